"""The overpass catalog as shared state: real concurrent crawler processes into one output folder, several
archives crawled in turn, and writers killed by SIGKILL in the middle of a crawl or of a catalog write."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from attribution_assets.assets.catalog import overpass_catalog
from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.catalog.store import (
    ARCHIVE_COLUMN,
    archive_key,
    crawl_into_catalog,
    read_geoparquet,
    write_geoparquet,
)
from attribution_assets.resources import OutputStore, ProductArchive
from attribution_assets_tests.processes import kill_when_ready
from attribution_assets_tests.test_atomic import killed_writer

pytestmark = pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")

NEWER_TROPOMI = "S5P_OFFL_L2__CH4____20250814T193300_20250814T211354_40858_03_020700_20250816T211354.nc"
BROKEN_EMIT = "EMIT_L1B_RAD_001_20250101T000000_2500101_001.nc"

# one crawler process: waits for the start signal, then crawls its archive `rounds` times into `output`
_CRAWLER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from attribution_assets.catalog.store import crawl_into_catalog
    from attribution_assets.resources import OutputStore
    archive, output, go, rounds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    files = OutputStore(root=output).catalog_files
    while not go.exists():
        time.sleep(0.005)
    for _ in range(rounds):
        crawl_into_catalog(archive, files, timeout_s=300)
    """
)

# a process killed in the middle of an update: "crawl" stops inside the crawl (holding the lock),
# "write" stops in the middle of writing the catalog file (holding the lock)
_STALLED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from attribution_assets.atomic import atomic_path
    from attribution_assets.catalog.store import catalog_lock, crawl_into_catalog
    from attribution_assets.resources import OutputStore
    archive, output, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    files = OutputStore(root=output).catalog_files

    def stall(i, path):
        print(path, flush=True)
        time.sleep(120)

    if mode == "crawl":
        crawl_into_catalog(archive, files, progress=stall)
    else:
        content = files.catalog.read_bytes()
        with catalog_lock(files.lock), atomic_path(files.catalog) as tmp:
            tmp.write_bytes(content[: len(content) // 2])
            stall(0, tmp)
    """
)


def make_archive(root: Path, sample_archive: Path, folders: list[str]) -> Path:
    """An archive with ``folders`` of the sample archive (product files in their real layouts)."""
    for folder in folders:
        shutil.copytree(sample_archive / folder, root / folder)
    return root


def add_newer_tropomi_and_broken_emit(root: Path, sample_archive: Path) -> None:
    """A TROPOMI granule in a newer processing (its old file becomes superseded) and a truncated EMIT
    file (rejected)."""
    old = next((sample_archive / "tropomi").glob("*_40858_*.nc"))
    shutil.copy(old, root / "tropomi" / NEWER_TROPOMI)
    (root / "emit").mkdir(exist_ok=True)
    (root / "emit" / BROKEN_EMIT).write_bytes(
        next((sample_archive / "emit").glob("*.nc")).read_bytes()[:4096]
    )


def rows_of(catalog: pd.DataFrame, root: Path) -> set[tuple[str, str]]:
    mine = catalog[catalog[ARCHIVE_COLUMN] == archive_key(root)]
    return set(zip(mine["path"], mine["granule_id"], strict=True))


def expected_rows(root: Path) -> set[tuple[str, str]]:
    catalog = crawl_archive(root).catalog
    return set(zip(catalog["path"], catalog["granule_id"], strict=True))


@pytest.fixture()
def archives(tmp_path, sample_archive) -> list[Path]:
    """Four different archives: the whole sample, two disjoint parts, and one with a superseded and a
    rejected file."""
    roots = [
        make_archive(tmp_path / "full", sample_archive, ["emit", "tropomi", "ghgsat", "oco2", "era5"]),
        make_archive(tmp_path / "satellites", sample_archive, ["emit", "ghgsat"]),
        make_archive(tmp_path / "met", sample_archive, ["era5", "oco2"]),
        make_archive(tmp_path / "reprocessed", sample_archive, ["tropomi"]),
    ]
    add_newer_tropomi_and_broken_emit(roots[3], sample_archive)
    return roots


def test_a_second_archive_never_wipes_the_first(tmp_path, archives):
    full, satellites = archives[0], archives[1]
    files = OutputStore(root=str(tmp_path / "out")).catalog_files
    first = crawl_into_catalog(full, files)
    n_full = len(first.crawl.catalog)
    assert n_full > 1 and first.rows_total == n_full and first.archives == [archive_key(full)]
    before = read_geoparquet(files.catalog)

    second = crawl_into_catalog(satellites, files)
    catalog = read_geoparquet(files.catalog)
    assert second.rows_total == len(catalog) == n_full + len(second.crawl.catalog)
    assert rows_of(catalog, full) == rows_of(before, full) == expected_rows(full)
    assert rows_of(catalog, satellites) == expected_rows(satellites)
    assert second.archives == sorted([archive_key(full), archive_key(satellites)])

    # a re-crawl of the first archive reopens nothing and changes nothing
    again = crawl_into_catalog(full, files)
    assert again.crawl.n_read == 0 and again.crawl.n_reused == first.crawl.n_files
    pd.testing.assert_frame_equal(read_geoparquet(files.catalog), catalog)

    # a file removed from one archive leaves that archive only; an emptied archive leaves the catalog
    gone = next((satellites / "ghgsat").glob("*.h5"))
    gone.unlink()
    crawl_into_catalog(satellites, files)
    catalog = read_geoparquet(files.catalog)
    assert str(gone) not in set(catalog["path"]) and rows_of(catalog, full) == expected_rows(full)
    shutil.rmtree(satellites)
    satellites.mkdir()
    assert crawl_into_catalog(satellites, files).rows_total == n_full
    pd.testing.assert_frame_equal(read_geoparquet(files.catalog), before)


def test_superseded_and_rejected_rows_are_kept_per_archive(tmp_path, archives):
    full, reprocessed = archives[0], archives[3]
    store = OutputStore(root=str(tmp_path / "out"))
    crawl_into_catalog(reprocessed, store.catalog_files)
    crawl_into_catalog(full, store.catalog_files)
    superseded = read_geoparquet(store.superseded_path)
    rejected = pd.read_csv(store.rejected_path)
    assert list(superseded["path"].unique()) == [
        str(next((reprocessed / "tropomi").glob("*_40858_03_020600_*")))
    ]
    assert set(superseded[ARCHIVE_COLUMN]) == {archive_key(reprocessed)}
    assert list(rejected["path"]) == [str(reprocessed / "emit" / BROKEN_EMIT)]
    assert (
        list(rejected[ARCHIVE_COLUMN]) == [archive_key(reprocessed)]
        and rejected["reason"].str.len().min() > 0
    )
    # the broken file is fixed: only that archive's rejected list changes
    (reprocessed / "emit" / BROKEN_EMIT).unlink()
    crawl_into_catalog(reprocessed, store.catalog_files)
    assert pd.read_csv(store.rejected_path).empty
    assert len(read_geoparquet(store.superseded_path)) == len(superseded)


def test_nested_archives_and_other_spellings_never_duplicate_rows(tmp_path, archives, monkeypatch):
    full = archives[0]
    files = OutputStore(root=str(tmp_path / "out")).catalog_files
    crawl_into_catalog(full, files)
    crawl_into_catalog(full / "tropomi", files)  # an archive inside another: its files move over
    catalog = read_geoparquet(files.catalog)
    assert not catalog.duplicated(["path", "granule_id"]).any() and rows_of(
        catalog, full / "tropomi"
    ) == expected_rows(full / "tropomi")
    crawl_into_catalog(full, files)
    catalog = read_geoparquet(files.catalog)
    assert not catalog.duplicated(["path", "granule_id"]).any() and set(catalog[ARCHIVE_COLUMN]) == {
        archive_key(full)
    }
    monkeypatch.chdir(tmp_path)
    update = crawl_into_catalog(Path(full.name), files)  # the same archive spelt relative to the cwd
    assert update.archives == [archive_key(full)] and update.rows_total == len(catalog)


def test_a_catalog_of_an_earlier_version_is_upserted_not_wiped(tmp_path, archives):
    full, met = archives[0], archives[2]
    store = OutputStore(root=str(tmp_path / "out"))
    legacy = crawl_archive(full).catalog  # no archive column
    write_geoparquet(legacy, store.catalog_path)
    crawl_into_catalog(met, store.catalog_files)
    catalog = read_geoparquet(store.catalog_path)
    assert len(catalog) == len(legacy) + len(expected_rows(met))
    assert set(legacy["path"]) <= set(catalog["path"])
    update = crawl_into_catalog(full, store.catalog_files)
    catalog = read_geoparquet(store.catalog_path)
    assert update.crawl.n_read == 0 and not catalog.duplicated(["path", "granule_id"]).any()
    assert len(catalog) == len(legacy) + len(expected_rows(met))
    assert rows_of(catalog, full) == expected_rows(full)


def test_a_corrupt_catalog_file_is_named(tmp_path, archives):
    store = OutputStore(root=str(tmp_path / "out"))
    store.catalog_path.parent.mkdir(parents=True)
    store.catalog_path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(ValueError, match=r"overpass_catalog\.parquet: the catalog file cannot be read"):
        crawl_into_catalog(archives[1], store.catalog_files)
    assert store.catalog_path.read_bytes() == b"PAR1 not really parquet"


def start(script: str, *args: str | Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["four-archives", "one-archive"])
def test_four_processes_crawling_at_once_lose_no_row(tmp_path, archives, layout):
    out = tmp_path / "out"
    roots = archives if layout == "four-archives" else [archives[0]] * 4
    go = tmp_path / "go"
    children = [start(_CRAWLER, root, out, go, 3) for root in roots]
    time.sleep(0.5)
    go.touch()  # all four start crawling together
    for child in children:
        stdout, stderr = child.communicate(timeout=240)
        assert child.returncode == 0, stderr
    store = OutputStore(root=str(out))
    catalog = read_geoparquet(store.catalog_path)
    alone = [crawl_archive(root) for root in set(roots)]  # each archive crawled on its own
    for root in set(roots):
        assert rows_of(catalog, root) == expected_rows(root), root
    assert len(catalog) == sum(len(result.catalog) for result in alone)
    assert not catalog.duplicated(["path", "granule_id"]).any()
    assert len(read_geoparquet(store.superseded_path)) == sum(len(r.superseded_rows) for r in alone)
    assert len(pd.read_csv(store.rejected_path)) == sum(len(r.rejected) for r in alone)
    assert not [p for p in out.rglob("*.part")]


def stall_and_kill(script: str, *args: str | Path) -> None:
    """Run a process until it reports that it stalls mid-update, SIGKILL it and reap it."""
    kill_when_ready(start(script, *args))


@pytest.mark.slow
def test_a_rerun_after_sigkill_gives_the_identical_catalog(tmp_path, archives):
    full, reprocessed = archives[0], archives[3]
    out = tmp_path / "out"
    store = OutputStore(root=str(out))
    crawl_into_catalog(reprocessed, store.catalog_files)
    crawl_into_catalog(full, store.catalog_files)
    reference = {path: path.read_bytes() for path in (store.catalog_path, store.superseded_path)}
    reference_rejected = store.rejected_path.read_text()

    stall_and_kill(_STALLED, full, out, "crawl")  # killed inside the crawl, holding the lock
    stall_and_kill(_STALLED, full, out, "write")  # killed with half a catalog file written
    orphans = list(store.catalog_path.parent.glob(".overpass_catalog.parquet.*.part"))
    assert len(orphans) == 1 and orphans[0].stat().st_size < len(reference[store.catalog_path])
    assert store.catalog_path.read_bytes() == reference[store.catalog_path]  # never half-written
    staging = killed_writer(full / "emit", mode="staging")  # a download killed in the archive

    # the next run: the crawl asset takes the (released) lock, removes the orphan, re-crawls
    started = time.perf_counter()
    result = materialize(
        [overpass_catalog],
        resources={"archive": ProductArchive(root=str(full)), "store": store},
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success and time.perf_counter() - started < 60
    metadata = result.asset_materializations_for_node("overpass_catalog")[0].metadata
    assert metadata["orphans_removed"].value == [str(staging), str(orphans[0])]
    assert metadata["rows_all_archives"].value == len(read_geoparquet(store.catalog_path))
    assert not orphans[0].exists() and not staging.exists()
    for path, content in reference.items():
        assert path.read_bytes() == content, path
    assert store.rejected_path.read_text() == reference_rejected
