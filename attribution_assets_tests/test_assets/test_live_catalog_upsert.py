"""The event step's live downloads go through the same locked per-archive upsert as the crawl asset: files
fetched into one archive are catalogued without touching another archive's rows in the same output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import instance_for_test

from attribution_assets.catalog.store import ARCHIVE_COLUMN, archive_key, read_geoparquet
from attribution_assets.resources import AnalysisSettings, CdsResource, EarthdataResource, build_resources
from attribution_assets_tests.test_access.transports import LocalCds, LocalEarthaccess
from attribution_assets_tests.test_assets.test_live_access import (
    EMIT_NAME,
    ERA5_NAME,
    _crawl,
    _permian_key,
    _run,
)


@pytest.mark.slow
def test_live_downloads_upsert_their_archive_only(
    tmp_path, sample_archive, sample_events, monkeypatch
) -> None:
    monkeypatch.setenv("EARTHDATA_TOKEN", "token")
    monkeypatch.setenv("CDSAPI_URL", "https://cds.climate.copernicus.eu/api")
    monkeypatch.setenv("CDSAPI_KEY", "key")
    archive = tmp_path / "archive"
    shutil.copytree(sample_archive, archive)
    (archive / "emit" / EMIT_NAME).unlink()
    (archive / "era5" / ERA5_NAME).unlink()
    other = tmp_path / "other-archive"
    shutil.copytree(sample_archive / "oco2", other / "oco2")
    output = tmp_path / "output"
    with instance_for_test() as instance:
        _crawl(instance, build_resources(other, output, AnalysisSettings(), live=False))
        resources = build_resources(archive, output, AnalysisSettings(), live=False)
        _crawl(instance, resources)
        store = resources["store"]
        before = read_geoparquet(store.catalog_path)
        other_rows = before[before[ARCHIVE_COLUMN] == archive_key(other)].reset_index(drop=True)
        assert len(other_rows) > 0
        live = {
            **resources,
            "earthdata": EarthdataResource(client=LocalEarthaccess(sample_archive), backoff_s=0.0),
            "cds": CdsResource(client=LocalCds(sample_archive / "era5" / ERA5_NAME), backoff_s=0.0),
        }
        result = _run(instance, live, _permian_key(instance, sample_events), "event_overpasses")
        assert result.success
    catalog = read_geoparquet(store.catalog_path)
    mine = catalog[catalog[ARCHIVE_COLUMN] == archive_key(archive)]
    assert str(archive / "emit" / EMIT_NAME) in set(mine["path"])
    assert any(Path(p).parent == archive / "era5" for p in set(mine["path"]) - set(before["path"]))
    kept = catalog[catalog[ARCHIVE_COLUMN] == archive_key(other)].reset_index(drop=True)
    assert kept.drop(columns="geometry").equals(other_rows.drop(columns="geometry"))
    assert len(catalog) == len(mine) + len(kept)
    assert len(mine) > (before[ARCHIVE_COLUMN] == archive_key(archive)).sum()
