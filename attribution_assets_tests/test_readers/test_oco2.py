"""OCO-2 L2 Lite FP: writer fidelity (B9 and B11), reader round trip, AOI selection and bad input."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr

from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.oco2 import read_oco2_lite
from attribution_assets.samples.formats.oco2 import oco2_lite_filename, write_oco2_lite

N = 10
T0 = np.datetime64("2023-10-19T19:40:00.000", "ns")


def make_carrier(
    n: int = N, lon0: float = -103.0, lat0: float = 31.0, t0: np.datetime64 = T0
) -> xr.Dataset:
    """``n`` soundings along a track from (``lon0``, ``lat0``) degrees north-eastwards, from ``t0``;
    every third flagged bad, the third sounding's XCO2 missing."""
    rng = np.random.default_rng(4)
    lat = lat0 + 0.02 * np.arange(n)
    lon = lon0 + 0.004 * np.arange(n)
    xco2 = rng.uniform(415, 425, n)
    xco2[2] = np.nan
    return xr.Dataset(
        {
            "xco2": ("sounding", xco2),
            "xco2_uncertainty": ("sounding", rng.uniform(0.4, 0.8, n)),
            "xco2_quality_flag": ("sounding", (np.arange(n) % 3 == 0).astype(np.int8)),
            "psurf": ("sounding", rng.uniform(880, 900, n)),
            "psurf_apriori": ("sounding", rng.uniform(880, 900, n)),
            "windspeed_u_met": ("sounding", rng.uniform(-3, 3, n)),
            "windspeed_v_met": ("sounding", rng.uniform(-3, 3, n)),
            "orbit": ("sounding", np.full(n, 48123, dtype=np.int32)),
            "footprint": ("sounding", (np.arange(n) % 8 + 1).astype(np.int8)),
            "operation_mode": ("sounding", np.ones(n, dtype=np.int8)),
            "pressure_levels": (("sounding", "level"), np.tile(np.linspace(1, 890, 20), (n, 1))),
        },
        coords={
            "sounding_id": ("sounding", 2023101919400001 + 10 * np.arange(n, dtype=np.int64)),
            "time": ("sounding", t0 + np.arange(n) * np.timedelta64(333, "ms")),
            "latitude": ("sounding", lat),
            "longitude": ("sounding", lon),
            "vertex_latitude": (("sounding", "vertex"), lat[:, None] + np.array([-1, -1, 1, 1]) * 0.006),
            "vertex_longitude": (("sounding", "vertex"), lon[:, None] + np.array([-1, 1, 1, -1]) * 0.0035),
        },
    )


@pytest.fixture()
def lite_file(tmp_path: Path) -> Path:
    path = tmp_path / oco2_lite_filename(date(2023, 10, 19))
    write_oco2_lite(make_carrier(), path)
    return path


def test_filename_follows_native_pattern() -> None:
    assert oco2_lite_filename(date(2023, 10, 19), processed=datetime(2024, 9, 10, 12, 34, 56)) == (
        "oco2_LtCO2_231019_B11210Ar_240910123456s.nc4")


def test_written_file_matches_documented_layout(lite_file: Path) -> None:
    with netCDF4.Dataset(lite_file) as nc:
        sizes = {d: len(v) for d, v in nc.dimensions.items()}
        assert sizes == {"sounding_id": N, "levels": 20, "vertices": 4}
        assert set(nc.groups) == {"Sounding", "Retrieval", "Meteorology"}
        assert nc["sounding_id"].dtype == np.int64 and nc["time"].dtype == np.float64
        assert nc["time"].units.startswith("seconds since 1970-01-01")
        assert nc["vertex_latitude"].dimensions == ("sounding_id", "vertices")
        xco2 = nc["xco2"]
        assert xco2.units == "ppm" and xco2.missing_value == -999999 and "_FillValue" not in xco2.ncattrs()
        xco2.set_auto_maskandscale(False)
        assert xco2[2] == -999999
        assert nc["xco2_quality_flag"].dtype == np.int8
        assert nc["Sounding/footprint"].dtype == np.int8 and nc["Sounding/orbit"][0] == 48123
        assert nc["Retrieval/psurf"].units == "hPa"
        assert {"windspeed_u_met", "windspeed_v_met", "psurf_apriori_o2a"} <= set(nc["Meteorology"].variables)
        assert nc["pressure_levels"].dimensions == ("sounding_id", "levels")
        assert nc.BuildId == "B11.1.00" and nc.Platform == "OCO-2"


def test_round_trip(lite_file: Path) -> None:
    carrier = make_carrier()
    ds = read_oco2_lite(lite_file)
    for name in ("xco2", "xco2_uncertainty", "psurf", "psurf_apriori", "windspeed_u_met", "windspeed_v_met",
                 "latitude", "longitude", "vertex_latitude", "vertex_longitude", "pressure_levels"):
        np.testing.assert_allclose(ds[name].values, carrier[name].values, rtol=1e-6, err_msg=name)
    assert np.isnan(ds["xco2"].values[2])
    for name in ("xco2_quality_flag", "orbit", "footprint", "operation_mode", "sounding_id", "time"):
        np.testing.assert_array_equal(ds[name].values, carrier[name].values, err_msg=name)
    assert ds.attrs["product_version"] == "B11.1.00" and ds.attrs["instrument"] == "OCO2"
    assert ds.attrs["time_coverage_end"] == "2023-10-19T19:40:02Z"


def test_b9_build_uses_psurf_apriori(tmp_path: Path) -> None:
    path = tmp_path / oco2_lite_filename(date(2019, 1, 1), build="B9", revision="213")
    write_oco2_lite(make_carrier(), path, build_id="B9.2.13")
    with netCDF4.Dataset(path) as nc:
        assert "psurf_apriori" in nc["Meteorology"].variables
        assert "psurf_apriori_o2a" not in nc["Meteorology"].variables
    ds = read_oco2_lite(path)
    np.testing.assert_allclose(ds["psurf_apriori"].values, make_carrier()["psurf_apriori"].values, rtol=1e-6)


def test_bbox_selects_soundings(lite_file: Path) -> None:
    ds = read_oco2_lite(lite_file, (-103.1, 31.043, -102.9, 31.115))
    # centres 3..5 inside; 2 and 6 reach in with their footprint vertices
    np.testing.assert_array_equal(ds["sounding_id"].values, make_carrier()["sounding_id"].values[2:7])
    with pytest.raises(EmptyAOIError, match=lite_file.name):
        read_oco2_lite(lite_file, (0.0, 0.0, 1.0, 1.0))


def test_bad_files_name_file_and_variable(lite_file: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.nc4"
    shutil.copy(lite_file, missing)
    with h5py.File(missing, "a") as h5:
        del h5["Meteorology/windspeed_u_met"]
    with pytest.raises(ProductFormatError, match=r"missing\.nc4.*Meteorology/windspeed_u_met"):
        read_oco2_lite(missing)
    units = tmp_path / "units.nc4"
    shutil.copy(lite_file, units)
    with netCDF4.Dataset(units, "a") as nc:
        nc["xco2"].units = "ppb"
    with pytest.raises(ProductFormatError, match=r"units\.nc4.*'xco2'.*ppm"):
        read_oco2_lite(units)
    truncated = tmp_path / "truncated.nc4"
    truncated.write_bytes(lite_file.read_bytes()[:2000])
    with pytest.raises(ProductFormatError, match="truncated.nc4"):
        read_oco2_lite(truncated)
