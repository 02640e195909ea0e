"""Atomic writes and crash safety with real processes: a writer killed by SIGKILL in the middle of a write
leaves the target old or absent, never half-written, and the next run removes its orphans."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from attribution_assets.atomic import (
    atomic_path,
    host_tag,
    is_orphan,
    move_into_place,
    remove_orphans,
    staging_dir,
    temporary_path,
)
from attribution_assets_tests.processes import kill_when_ready

pytestmark = pytest.mark.skipif(os.name == "nt", reason="SIGKILL and pid probes are POSIX")

# a writer that stops in the middle of a write: half the new content is in the temporary file
_WRITER = textwrap.dedent(
    """
    import sys, time
    from attribution_assets.atomic import atomic_path, staging_dir
    target, mode = sys.argv[1], sys.argv[2]
    if mode == "file":
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"NEW-HALF")
                handle.flush()
            print(tmp, flush=True)
            time.sleep(120)
    else:
        with staging_dir(target) as staging:
            (staging / "download.nc").write_bytes(b"partial granule")
            print(staging, flush=True)
            time.sleep(120)
    """
)


def killed_writer(target: Path, mode: str = "file") -> Path:
    """Start a real writer process, wait until it is in the middle of its write, SIGKILL it, reap it;
    return the temporary file (or staging folder) it left."""
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(target), mode], stdout=subprocess.PIPE, text=True
    )
    left = Path(kill_when_ready(child).strip())
    assert left.exists(), f"the writer did not start its write ({left})"
    return left


def dead_pid() -> int:
    """The id of a process that has finished and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_atomic_write_replaces_the_target_and_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "table.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".table.csv.") and tmp.suffix == ".part"
        tmp.write_text("a,b\n1,2\n")
        assert not target.exists()
    assert target.read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]


def test_failed_block_keeps_the_old_target(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(target) as tmp:
        tmp.write_text("new, half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_temporary_names_are_unique_per_write_and_fit_the_file_system(tmp_path):
    target = tmp_path / "x.nc"
    names = {temporary_path(target).name for _ in range(100)}
    assert len(names) == 100
    assert all(f".{os.getpid()}-" in name and name.endswith(f"@{host_tag()}.part") for name in names)
    long_target = tmp_path / ("S5P_" + "A" * 250 + ".nc")
    assert len(temporary_path(long_target).name.encode()) <= 255


def test_threads_writing_one_target_never_mix(tmp_path):
    target = tmp_path / "shared.bin"
    errors: list[BaseException] = []

    def write(byte: bytes) -> None:
        try:
            for _ in range(20):
                with atomic_path(target) as tmp:
                    tmp.write_bytes(byte * 100_000)
        except BaseException as error:  # collected and re-raised in the test thread
            errors.append(error)

    threads = [threading.Thread(target=write, args=(bytes([65 + i]),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    content = target.read_bytes()
    assert len(content) == 100_000 and len(set(content)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]


@pytest.mark.parametrize("old", [b"OLD-COMPLETE-CONTENT", None], ids=["old-target", "no-target"])
def test_sigkill_mid_write_leaves_old_or_no_target_and_the_next_run_removes_the_orphan(tmp_path, old):
    target = tmp_path / "catalog" / "overpass_catalog.parquet"
    if old is not None:
        target.parent.mkdir(parents=True)
        target.write_bytes(old)
    orphan = killed_writer(target)
    assert orphan.exists() and orphan.read_bytes() == b"NEW-HALF"
    assert orphan.parent == target.parent and orphan.name.startswith(".overpass_catalog.parquet.")
    assert (target.read_bytes() if target.exists() else None) == old
    assert remove_orphans(tmp_path) == [orphan]
    assert not orphan.exists()
    assert (target.read_bytes() if target.exists() else None) == old
    assert remove_orphans(tmp_path) == []


def test_sigkill_mid_download_leaves_a_staging_folder_that_the_next_run_removes(tmp_path):
    archive = tmp_path / "archive" / "emit"
    staging = killed_writer(archive, mode="staging")
    assert staging.is_dir() and (staging / "download.nc").exists()
    assert remove_orphans(tmp_path / "archive") == [staging]
    assert not staging.exists() and archive.is_dir()


def test_live_writers_are_left_alone_until_the_age_limit(tmp_path):
    target = tmp_path / "posterior.parquet"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"in progress")
        assert not is_orphan(tmp)
        assert remove_orphans(tmp_path) == []
    assert target.read_bytes() == b"in progress"
    with staging_dir(tmp_path / "archive") as staging:
        assert remove_orphans(tmp_path) == [] and staging.exists()
    # a file of a live process id that has not changed for longer than the limit: the id was reused
    stale = temporary_path(target)
    stale.write_bytes(b"stale")
    assert remove_orphans(tmp_path, max_age_s=3600) == []
    assert remove_orphans(tmp_path, max_age_s=3600, now=time.time() + 7200) == [stale]


def test_orphans_of_other_hosts_and_legacy_names(tmp_path):
    gone = dead_pid()
    other_host = tmp_path / f".a.nc.{gone}-0badc0de@some-other-node.part"
    legacy_file = tmp_path / "sub" / f".b.parquet.{gone}.part"
    legacy_staging = tmp_path / ".staging-k2j3h4g5"
    unrelated = [tmp_path / ".catalog.lock", tmp_path / "notes.part", tmp_path / ".draft.part"]
    legacy_file.parent.mkdir()
    for path in (other_host, legacy_file, *unrelated):
        path.write_bytes(b"x")
    legacy_staging.mkdir()
    # on another host the process id says nothing: only the age rule applies; legacy files are local
    assert remove_orphans(tmp_path) == [legacy_file]
    later = time.time() + 2 * 24 * 3600
    assert remove_orphans(tmp_path, now=later) == sorted([other_host, legacy_staging])
    assert all(path.exists() for path in unrelated)


def test_move_into_place_is_atomic_and_leaves_no_staging(tmp_path):
    target = tmp_path / "archive" / "era5" / "era5.nc"
    with staging_dir(target.parent) as staging:
        staged = staging / "download"
        staged.write_bytes(b"complete")
        assert move_into_place(staged, target) == target
    assert target.read_bytes() == b"complete"
    assert [p.name for p in target.parent.iterdir()] == ["era5.nc"]
