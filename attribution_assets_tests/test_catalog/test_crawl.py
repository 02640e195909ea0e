"""Catalog crawl, GeoParquet store and DuckDB queries on the bundled real-layout archive."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, date, datetime, timedelta

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely

from attribution_assets.catalog.crawl import FOOTPRINT_METHOD, crawl_archive
from attribution_assets.catalog.filenames import parse_native_name
from attribution_assets.catalog.query import query_overpasses
from attribution_assets.catalog.rejected import rejected_overlapping
from attribution_assets.catalog.store import read_geoparquet, write_geoparquet
from attribution_assets.readers.checksum import file_checksum
from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.oco2 import read_oco2_lite
from attribution_assets.samples.formats.oco2 import oco2_lite_filename, write_oco2_lite
from attribution_assets_tests.test_readers.test_oco2 import make_carrier


@pytest.fixture()
def archive(tmp_path, sample_archive):
    root = tmp_path / "archive"
    shutil.copytree(sample_archive, root)
    return root


def test_crawl_finds_every_product(archive):
    result = crawl_archive(archive)
    files = {os.path.basename(p) for p in result.catalog["path"]}
    assert result.rejected.empty
    assert set(result.catalog["instrument"]) == {"EMIT", "TROPOMI", "GHGSAT", "OCO2", "ERA5"}
    assert len(files) == result.n_read == result.n_files
    assert result.catalog.geometry.is_valid.all() and not result.catalog.geometry.is_empty.any()
    assert (result.catalog["time_end"] >= result.catalog["time_start"]).all()


def test_recrawl_reuses_unchanged_files(archive):
    first = crawl_archive(archive)
    second = crawl_archive(archive, previous=first.catalog)
    assert second.n_read == 0 and second.n_reused == first.n_files
    assert second.catalog.drop(columns="geometry").equals(first.catalog.drop(columns="geometry"))
    touched = sorted(archive.rglob("*.h5"))[0]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    third = crawl_archive(archive, previous=second.catalog)
    assert third.n_read == 1
    # a catalog whose footprints were drawn before antimeridian-aware footprints: every file again
    drawn_before = third.catalog.drop(columns="footprint_method")
    fourth = crawl_archive(archive, previous=drawn_before)
    assert fourth.n_reused == 0 and fourth.n_read == third.n_read + third.n_reused
    assert set(fourth.catalog["footprint_method"]) == {FOOTPRINT_METHOD}


def test_newest_processing_wins(archive):
    tropomi = sorted((archive / "tropomi").glob("S5P_*.nc"))[0]
    native = parse_native_name(tropomi.name)
    newer = tropomi.name.replace("_020600_", "_020700_")
    shutil.copy(tropomi, tropomi.with_name(newer))
    result = crawl_archive(archive)
    paths = set(result.catalog.loc[result.catalog["granule_id"].str.startswith(native.granule), "path"])
    assert paths == {str(tropomi.with_name(newer))}
    assert result.superseded == [str(tropomi)]


def test_oco2_footprints_cover_every_sounding_and_its_corners(archive):
    catalog = crawl_archive(archive).catalog
    oco2 = catalog[catalog["instrument"] == "OCO2"]
    with h5py.File(oco2["path"].iloc[0]) as h5:
        lat, lon = h5["latitude"][()], h5["longitude"][()]
        corners_lat, corners_lon = h5["vertex_latitude"][()].ravel(), h5["vertex_longitude"][()].ravel()
    footprint = shapely.union_all(oco2.geometry.values)
    assert shapely.contains_xy(footprint, lon, lat).all()
    assert shapely.contains_xy(footprint, corners_lon, corners_lat).all()
    assert oco2["n_obs"].sum() == lat.size and oco2["granule_id"].is_unique
    assert (oco2["time_end"] >= oco2["time_start"]).all()
    # compact segments: each footprint spans at most ~400 km along track (+ margin), under 5 deg
    bounds = oco2.geometry.bounds
    assert ((bounds["maxy"] - bounds["miny"]) < 5.0).all()


def test_recrawl_does_not_reopen_superseded_files(archive):
    tropomi = sorted((archive / "tropomi").glob("S5P_*.nc"))[0]
    newer = tropomi.with_name(tropomi.name.replace("_020600_", "_020700_"))
    shutil.copy(tropomi, newer)
    first = crawl_archive(archive)
    assert first.superseded == [str(tropomi)] and str(tropomi) not in set(first.catalog["path"])
    assert set(first.superseded_rows["path"]) == {str(tropomi)}
    assert len(first.known_rows) == len(first.catalog) + len(first.superseded_rows)
    second = crawl_archive(archive, previous=first.known_rows)
    assert second.n_read == 0 and second.n_reused == second.n_files == first.n_files
    assert second.superseded == [str(tropomi)]
    assert second.catalog.drop(columns="geometry").equals(first.catalog.drop(columns="geometry"))
    # without the superseded rows the older file is opened again
    assert crawl_archive(archive, previous=first.catalog).n_read == 1
    # when the newer processing goes away, the older file is back in the catalog without reopening it
    newer.unlink()
    third = crawl_archive(archive, previous=second.known_rows)
    assert third.n_read == 0 and third.superseded == []
    assert str(tropomi) in set(third.catalog["path"])


def test_catalog_fingerprint_is_the_reader_checksum(archive):
    catalog = crawl_archive(archive).catalog
    emit = catalog[catalog["instrument"] == "EMIT"].iloc[0]
    assert emit["fingerprint"] == read_emit_l1b(emit["path"]).attrs["checksum"] == file_checksum(emit["path"])
    assert emit["fingerprint"].startswith(f"sha256-headtail-v1:{emit['size_bytes']}:")


def test_bad_files_are_rejected_with_reason_and_crawl_goes_on(archive):
    emit = sorted((archive / "emit").glob("EMIT_*.nc"))[0]
    emit.write_bytes(emit.read_bytes()[:4096])
    (archive / "notes.txt").write_text("not a product")
    result = crawl_archive(archive)
    assert list(result.rejected["path"]) == [str(emit)]
    assert result.n_ignored == 1
    assert "TROPOMI" in set(result.catalog["instrument"])


def test_content_recognised_files_are_opened_once_and_judged_by_content(archive):
    ghgsat = sorted((archive / "ghgsat").glob("*.h5"))[0]
    ghgsat.write_bytes(ghgsat.read_bytes()[:2048])
    other = archive / "era5" / "not_era5.nc"
    with h5py.File(other, "w") as h5:
        h5["temperature"] = [1.0, 2.0]
    (archive / "era5" / "notes.nc").write_text("plain text with a NetCDF suffix")
    result = crawl_archive(archive)
    assert list(result.rejected["path"]) == [str(ghgsat)]
    assert result.rejected["reason"].iloc[0].startswith("OSError")
    assert result.n_ignored == 2
    assert set(result.catalog["instrument"]) == {"EMIT", "TROPOMI", "GHGSAT", "OCO2", "ERA5"}


def test_geoparquet_store_and_duckdb_query(tmp_path, archive):
    catalog = crawl_archive(archive).catalog
    path = write_geoparquet(catalog, tmp_path / "catalog.parquet")
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert len(read_geoparquet(path)) == len(catalog)
    t = datetime(2025, 8, 14, 17, 31, tzinfo=UTC)
    near = query_overpasses(
        path, (-103.62, 31.90, -103.60, 31.92), t - timedelta(hours=12), t + timedelta(hours=12)
    )
    assert {"EMIT", "GHGSAT", "TROPOMI", "ERA5"} <= set(near["instrument"])
    assert "OCO2" not in set(near["instrument"])
    only = query_overpasses(
        path, (-103.62, 31.90, -103.60, 31.92), t - timedelta(hours=12), t + timedelta(hours=12), ["EMIT"]
    )
    assert set(only["instrument"]) == {"EMIT"}
    later = query_overpasses(
        path, (-103.62, 31.90, -103.60, 31.92), t + timedelta(days=3), t + timedelta(days=4)
    )
    assert later.empty
    far = query_overpasses(path, (10.0, 10.0, 10.1, 10.1), t - timedelta(days=400), t + timedelta(days=400))
    assert far.empty


@pytest.mark.parametrize(
    "name, instrument, granule",
    [
        ("EMIT_L1B_RAD_001_20250814T173100_2522611_004.nc", "EMIT", "EMIT_20250814T173100_2522611_004"),
        (
            "S5P_OFFL_L2__CH4____20250814T194000_20250814T212000_40512_03_020600_20250815T212000.nc",
            "TROPOMI",
            "S5P_CH4_40512",
        ),
        ("oco2_LtCO2_250610_B11210Ar_250710000000s.nc4", "OCO2", "OCO2_LITE_250610"),
        ("wrfout_d01_2025-08-14_00:00:00", "WRF", "WRF_d01_2025-08-14_00:00:00"),
    ],
)
def test_native_names(name, instrument, granule):
    parsed = parse_native_name(name)
    assert parsed is not None and parsed.instrument == instrument and parsed.granule == granule


def test_user_named_files_are_not_native():
    assert parse_native_name("era5_single_levels_permian-ch4_20250814.nc") is None
    assert parse_native_name("GHGSat_L2_C5_20250814T164500Z_permian.h5") is None


def test_query_finds_a_track_across_the_antimeridian(tmp_path):
    """An OCO-2 track at 179.95 W and a search box around an event at 179.75 E that reaches past 180:
    the catalog finds the granule whichever way the box writes its longitudes, as the reader finds its
    soundings in that box; the rejected-file list is searched the same way."""
    n = 40
    carrier = make_carrier(n, lon0=-179.95, lat0=-17.6, t0=np.datetime64("2024-08-14T06:00:00", "ns"))
    archive = tmp_path / "archive"
    (archive / "oco2").mkdir(parents=True)
    granule = archive / "oco2" / oco2_lite_filename(date(2024, 8, 14))
    write_oco2_lite(carrier, granule)
    catalog = crawl_archive(archive).catalog
    west, _, east, _ = catalog.total_bounds  # the buffered track reaches past -180: split there
    assert west >= -180.0 and east <= 180.0 and catalog.geometry.iloc[0].geom_type == "MultiPolygon"
    path = write_geoparquet(catalog, tmp_path / "catalog.parquet")
    t0, t1 = datetime(2024, 8, 14, 3, tzinfo=UTC), datetime(2024, 8, 14, 9, tzinfo=UTC)
    reaching_past_180 = (178.999, -17.72, 180.501, -16.28)
    across = (178.999, -17.72, -179.499, -16.28)
    for bbox in (reaching_past_180, across, (-181.001, -17.72, -179.499, -16.28)):
        assert len(query_overpasses(path, bbox, t0, t1, ["OCO2"])) == 1, bbox
        assert read_oco2_lite(granule, bbox).sizes["sounding"] == n
    assert query_overpasses(path, (178.999, -17.72, 179.9, -16.28), t0, t1).empty  # stops short of the track
    rejected = pd.DataFrame([{"path": str(granule), "reason": "OSError: truncated", "instrument": "OCO2",
                              "time_start": "2024-08-14T06:00:00Z", "time_end": "2024-08-14T06:00:14Z",
                              "west": -179.96, "south": -17.6, "east": -179.94, "north": -16.4}])
    assert len(rejected_overlapping(rejected, "OCO2", reaching_past_180, t0, t1)) == 1
    assert rejected_overlapping(rejected, "OCO2", (178.999, -17.72, 179.9, -16.28), t0, t1).empty
