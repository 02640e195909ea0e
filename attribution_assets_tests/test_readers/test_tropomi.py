"""TROPOMI L2 CH4: writer fidelity, reader round trip, AOI selection and bad input."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr

from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.catalog.query import query_overpasses
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.tropomi import read_tropomi_ch4
from attribution_assets.samples.formats.tropomi import tropomi_ch4_filename, write_tropomi_ch4

SCANS, PIXELS = np.arange(100, 106), np.arange(10, 15)
DROPPED = {(101, 12), (104, 10)}
T0 = np.datetime64("2024-06-01T18:30:00.000", "ns")
DLAT, DLON = 0.05, 0.07


def make_carrier(with_wind: bool = True) -> xr.Dataset:
    """Pixels on a 6 x 5 swath (two grid cells missing); qa 0.4 on ground pixel 11."""
    cells = [(s, g) for s in SCANS for g in PIXELS if (s, g) not in DROPPED]
    scan = np.array([c[0] for c in cells])
    gp = np.array([c[1] for c in cells])
    n = scan.size
    rng = np.random.default_rng(2)
    lat = 40.0 + (scan - 100) * DLAT
    lon = -100.0 + (gp - 10) * DLON
    corner_lat = np.array([-1, -1, 1, 1]) * DLAT / 2
    corner_lon = np.array([-1, 1, 1, -1]) * DLON / 2
    layer = np.arange(12)[None, :]
    index = np.arange(n)[:, None]
    ds = xr.Dataset(
        {
            "xch4": ("pixel", rng.uniform(1850, 1950, n)),
            "xch4_precision": ("pixel", rng.uniform(5, 15, n)),
            "qa_value": ("pixel", np.where(gp == 11, 0.4, np.where(gp == 12, 0.5, 1.0))),
            "column_averaging_kernel": (("pixel", "layer"), 0.6 + 0.05 * layer + 0.001 * index),
            "methane_profile_apriori": (("pixel", "layer"), 0.01 * (12 - layer) + 0.0001 * index),
            "dry_air_subcolumns": (("pixel", "layer"), 2800.0 - 10.0 * layer + np.zeros((n, 1))),
            "surface_pressure": ("pixel", rng.uniform(90000, 101000, n)),
            "pressure_interval": ("pixel", np.full(n, 7800.0)),
        },
        coords={
            "latitude": ("pixel", lat),
            "longitude": ("pixel", lon),
            "latitude_bounds": (("pixel", "corner"), lat[:, None] + corner_lat),
            "longitude_bounds": (("pixel", "corner"), lon[:, None] + corner_lon),
            "time": ("pixel", T0 + (scan - 100) * np.timedelta64(840, "ms")),
            "scanline": ("pixel", scan),
            "ground_pixel": ("pixel", gp),
        },
        attrs={"orbit": 34567, "processor_version": "02.06.00"},
    )
    if with_wind:
        ds["eastward_wind"] = ("pixel", rng.uniform(-5, 5, n))
    return ds


@pytest.fixture()
def s5p_file(tmp_path: Path) -> Path:
    name = tropomi_ch4_filename(datetime(2024, 6, 1, 17, 40), datetime(2024, 6, 1, 19, 21), 34567)
    path = tmp_path / name
    write_tropomi_ch4(make_carrier(), path)
    return path


def test_filename_follows_native_pattern() -> None:
    name = tropomi_ch4_filename(datetime(2024, 6, 1, 17, 40, 3), datetime(2024, 6, 1, 19, 21, 33), 34567)
    assert name == ("S5P_OFFL_L2__CH4____20240601T174003_20240601T192133_34567_03_020600_"
                    "20240602T192133.nc")


def test_written_file_matches_documented_layout(s5p_file: Path) -> None:
    with netCDF4.Dataset(s5p_file) as nc:
        product = nc["PRODUCT"]
        assert {d: len(v) for d, v in product.dimensions.items()} == {
            "time": 1, "scanline": 6, "ground_pixel": 5, "corner": 4, "layer": 12, "level": 13}
        assert set(product["SUPPORT_DATA"].groups) == {"GEOLOCATIONS", "DETAILED_RESULTS", "INPUT_DATA"}
        qa = product["qa_value"]
        assert qa.dtype == np.uint8 and qa._FillValue == 255 and qa.scale_factor == pytest.approx(0.01)
        qa.set_auto_maskandscale(False)
        assert qa[0, 1, 2] == 255  # the dropped (101, 12) cell
        assert qa[0, 0, 0] == 100
        assert product["time"].units == "seconds since 2010-01-01 00:00:00"
        assert product["delta_time"].dimensions == ("time", "scanline")
        assert product["delta_time"].units == "milliseconds"
        assert product["time_utc"][0, 1] == "2024-06-01T18:30:00.840000Z"
        assert product["methane_mixing_ratio_bias_corrected"].units == "1e-9"
        lat = product["latitude"]
        lat.set_auto_maskandscale(False)
        assert lat.dtype == np.float32 and lat[0, 4, 0] == np.float32(9.96921e36)
        np.testing.assert_array_equal(product["scanline"][:], SCANS)
        support = product["SUPPORT_DATA"]
        assert support["GEOLOCATIONS"]["latitude_bounds"].dimensions[-1] == "corner"
        ak = support["DETAILED_RESULTS"]["column_averaging_kernel"]
        assert ak.dimensions == ("time", "scanline", "ground_pixel", "layer")
        # layers stored top-of-atmosphere -> surface: the surface value 0.6 is last
        assert ak[0, 0, 0, -1] == pytest.approx(0.6) and ak[0, 0, 0, 0] == pytest.approx(1.15)
        inputs = support["INPUT_DATA"]
        for name, units in (("surface_pressure", "Pa"), ("pressure_interval", "Pa"),
                            ("methane_profile_apriori", "mol m-2"), ("dry_air_subcolumns", "mol m-2")):
            assert inputs[name].units == units
        alt = inputs["altitude_levels"][0, 0, 0]
        assert alt.shape == (13,) and alt[-1] == pytest.approx(0.0) and np.all(np.diff(alt) < 0)
        assert "eastward_wind" in inputs.variables
        assert nc.processor_version == "02.06.00" and nc.orbit == 34567


def test_round_trip_keeps_good_pixels(s5p_file: Path) -> None:
    carrier = make_carrier()
    good = carrier.isel(pixel=np.nonzero(carrier["qa_value"].values >= 0.5)[0])
    ds = read_tropomi_ch4(s5p_file)
    assert ds.sizes == {"pixel": good.sizes["pixel"], "layer": 12, "corner": 4, "level": 13}
    np.testing.assert_array_equal(ds["scanline"].values, good["scanline"].values)
    np.testing.assert_array_equal(ds["ground_pixel"].values, good["ground_pixel"].values)
    np.testing.assert_array_equal(ds["time"].values, good["time"].values)
    np.testing.assert_allclose(ds["qa_value"].values, good["qa_value"].values, atol=1e-6)
    for name in ("xch4", "xch4_precision", "latitude", "longitude", "latitude_bounds", "surface_pressure",
                 "pressure_interval", "column_averaging_kernel", "methane_profile_apriori",
                 "dry_air_subcolumns", "eastward_wind"):
        np.testing.assert_allclose(ds[name].values, good[name].values, rtol=1e-6, err_msg=name)
    assert ds["xch4"].attrs["units"] == "ppb"
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    assert ds.attrs["product_version"] == "02.06.00" and ds.attrs["instrument"] == "TROPOMI"
    assert ds.attrs["time_coverage_start"] == "2024-06-01T18:30:00Z"


def test_optional_variables_may_be_absent(tmp_path: Path) -> None:
    path = tmp_path / "no_wind.nc"
    write_tropomi_ch4(make_carrier(with_wind=False), path)
    ds = read_tropomi_ch4(path)
    assert "eastward_wind" not in ds and "xch4" in ds


def test_bbox_selects_pixels_touching_it(s5p_file: Path) -> None:
    # a tiny box strictly inside pixel (102, 13): neither its centre nor its corners are in the box
    lat, lon = 40.0 + 2 * DLAT, -100.0 + 3 * DLON
    ds = read_tropomi_ch4(s5p_file, (lon + 0.005, lat + 0.005, lon + 0.01, lat + 0.01))
    assert ds["scanline"].values.tolist() == [102] and ds["ground_pixel"].values.tolist() == [13]
    box = read_tropomi_ch4(s5p_file, (lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01))
    assert box["scanline"].values.tolist() == [102] and box["ground_pixel"].values.tolist() == [13]
    wide = read_tropomi_ch4(s5p_file, (-100.1, 40.0, lon, lat))
    assert set(wide["scanline"].values.tolist()) == {100, 101, 102}
    assert set(wide["ground_pixel"].values.tolist()) == {10, 12, 13}  # 11 fails qa


def test_aoi_outside_or_only_low_quality_is_empty(s5p_file: Path) -> None:
    with pytest.raises(EmptyAOIError, match=s5p_file.name):
        read_tropomi_ch4(s5p_file, (10.0, 10.0, 11.0, 11.0))
    lon11 = -100.0 + DLON
    with pytest.raises(EmptyAOIError, match="qa_value"):
        read_tropomi_ch4(s5p_file, (lon11 - 0.001, 40.1, lon11 + 0.001, 40.11))


def test_bad_files_name_file_and_variable(s5p_file: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(s5p_file.read_bytes()[:4000])
    with pytest.raises(ProductFormatError, match="truncated.nc"):
        read_tropomi_ch4(truncated)
    missing = tmp_path / "missing.nc"
    shutil.copy(s5p_file, missing)
    with h5py.File(missing, "a") as h5:
        del h5["PRODUCT/SUPPORT_DATA/DETAILED_RESULTS/column_averaging_kernel"]
    with pytest.raises(ProductFormatError, match=r"missing\.nc.*column_averaging_kernel"):
        read_tropomi_ch4(missing)
    units = tmp_path / "units.nc"
    shutil.copy(s5p_file, units)
    with netCDF4.Dataset(units, "a") as nc:
        nc["PRODUCT/methane_mixing_ratio_bias_corrected"].units = "mol m-2"
    with pytest.raises(ProductFormatError, match=r"units\.nc.*methane_mixing_ratio_bias_corrected.*units"):
        read_tropomi_ch4(units)


def test_a_swath_across_the_antimeridian_is_catalogued_on_both_sides(tmp_path: Path) -> None:
    """A swath from 179.85 E to 179.87 W: its catalog footprint is split at 180 (both parts in
    [-180, 180]), and a search on either side of 180 finds it, as the reader finds its pixels there."""
    carrier = make_carrier()
    for name in ("longitude", "longitude_bounds"):
        carrier[name] = (carrier[name] + 279.85 + 180.0) % 360.0 - 180.0
    name = tropomi_ch4_filename(datetime(2024, 6, 1, 17, 40), datetime(2024, 6, 1, 19, 21), 34567)
    (tmp_path / "archive").mkdir()
    path = tmp_path / "archive" / name
    write_tropomi_ch4(carrier, path)
    catalog = crawl_archive(tmp_path / "archive").catalog
    assert len(catalog) == 1
    footprint = catalog.geometry.iloc[0]
    west, _, east, _ = footprint.bounds
    assert footprint.geom_type == "MultiPolygon" and west == -180.0 and east == 180.0
    assert footprint.area < 0.5 * (40.3 - 39.9)  # the swath, not the band of longitudes between its edges
    stored = write_geoparquet(catalog, tmp_path / "catalog.parquet")
    t0, t1 = datetime(2024, 6, 1, 17, tzinfo=UTC), datetime(2024, 6, 1, 20, tzinfo=UTC)
    for side in ((179.93, 40.05, 179.98, 40.1), (-179.95, 40.05, -179.9, 40.1)):
        assert len(query_overpasses(stored, side, t0, t1)) == 1, side
        assert read_tropomi_ch4(path, side).sizes["pixel"] > 0, side
    assert query_overpasses(stored, (179.0, 40.05, 179.5, 40.1), t0, t1).empty
    assert query_overpasses(stored, (0.0, 40.05, 0.5, 40.1), t0, t1).empty
