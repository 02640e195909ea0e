"""WRF output: native writer and reader round trip, C-grid staggering, bbox, errors."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.wrf import parse_wrf_filename, read_wrf
from attribution_assets.samples.formats.wrf import wrf_filename, write_wrf

T0 = np.datetime64("2024-06-01T18:00", "ns")
NT, NZ, NY, NX = 2, 3, 6, 8


def _u(t, k, j, i):
    return 3.0 + 0.5 * i + 0.2 * j + 1.0 * k + 0.25 * t


def _v(t, k, j, i):
    return -2.0 + 0.1 * i + 0.7 * j - 0.5 * k


def carrier(rotation_deg: float | None = None) -> xr.Dataset:
    """Mass-point carrier with winds linear in the grid indices."""
    t, k, j, i = np.meshgrid(np.arange(NT), np.arange(NZ), np.arange(NY), np.arange(NX), indexing="ij")
    jj, ii = np.meshgrid(np.arange(NY, dtype=float), np.arange(NX, dtype=float), indexing="ij")
    lat, lon = 31.0 + 0.03 * jj, -103.0 + 0.035 * ii
    d3, d4 = ("time", "south_north", "west_east"), ("time", "bottom_top", "south_north", "west_east")
    ones = np.ones((NT, NY, NX))
    ds = xr.Dataset(
        {
            "u": (d4, _u(t, k, j, i)),
            "v": (d4, _v(t, k, j, i)),
            "u10": (d4[:1] + d4[2:], 0.8 * _u(t, 0, j, i)[:, 0]),
            "v10": (d3, 0.8 * _v(t, 0, j, i)[:, 0]),
            "pblh": (d3, 900.0 * ones),
            "psfc": (d3, 88000.0 * ones),
            "hgt": (d3, 850.0 + 10.0 * jj * ones),
        },
        coords={
            "time": T0 + np.arange(NT) * np.timedelta64(1, "h"),
            "lat": (d3[1:], lat),
            "lon": (d3[1:], lon),
        },
        attrs={
            "DX": 3000.0,
            "DY": 3000.0,
            "MAP_PROJ": 1,
            "TRUELAT1": 30.0,
            "TRUELAT2": 60.0,
            "STAND_LON": -98.0,
        },
    )
    if rotation_deg is not None:
        alpha = np.deg2rad(rotation_deg)
        ds["cosalpha"] = (d3, np.cos(alpha) * ones)
        ds["sinalpha"] = (d3, np.sin(alpha) * ones)
    return ds


def test_filename_is_native() -> None:
    name = wrf_filename(2, datetime(2024, 6, 1, 18, 0, 0))
    assert name == "wrfout_d02_2024-06-01_18:00:00"
    assert parse_wrf_filename(name) == (2, datetime(2024, 6, 1, 18))
    assert parse_wrf_filename("wrfout_d01_2024-06-01_18_00_00.nc") == (1, datetime(2024, 6, 1, 18))
    assert parse_wrf_filename("era5.nc") is None


def test_round_trip_and_staggering(tmp_path: Path) -> None:
    path = tmp_path / wrf_filename(1, T0)
    source = carrier()
    write_wrf(source, path)
    with netCDF4.Dataset(path) as nc:
        assert nc.variables["U"].dimensions == ("Time", "bottom_top", "south_north", "west_east_stag")
        assert nc.variables["V"].dimensions == ("Time", "bottom_top", "south_north_stag", "west_east")
        raw_u = np.asarray(nc.variables["U"][:])
        raw_v = np.asarray(nc.variables["V"][:])
        times = netCDF4.chartostring(nc.variables["Times"][:])
    t, k, j, i_face = np.meshgrid(
        np.arange(NT), np.arange(NZ), np.arange(NY), np.arange(NX + 1), indexing="ij"
    )
    np.testing.assert_allclose(raw_u, _u(t, k, j, i_face - 0.5), atol=1e-5)  # faces half a cell west
    t, k, j_face, i = np.meshgrid(
        np.arange(NT), np.arange(NZ), np.arange(NY + 1), np.arange(NX), indexing="ij"
    )
    np.testing.assert_allclose(raw_v, _v(t, k, j_face - 0.5, i), atol=1e-5)
    assert list(times) == ["2024-06-01_18:00:00", "2024-06-01_19:00:00"]

    back = read_wrf(path)
    np.testing.assert_allclose(back["u"].values, source["u"].values, atol=1e-5)
    np.testing.assert_allclose(back["v"].values, source["v"].values, atol=1e-5)
    np.testing.assert_allclose(back["u_bl"].values, source["u"].isel(bottom_top=0).values, atol=1e-5)
    for name in ("u10", "v10", "pblh", "psfc", "hgt"):
        np.testing.assert_allclose(back[name].values, source[name].values, rtol=1e-6, atol=1e-5)
        assert back[name].attrs["units"]
    np.testing.assert_array_equal(back["time"].values, source["time"].values)
    np.testing.assert_allclose(back["lat"].values, source["lat"].values, atol=1e-5)
    assert back.attrs["MAP_PROJ"] == 1 and back.attrs["DX"] == 3000.0 and back.attrs["domain"] == 1
    assert back.attrs["instrument"] == "WRF" and back.attrs["checksum"].startswith("sha256-headtail-v1:")
    assert back.attrs["time_coverage_start"] == "2024-06-01T18:00:00Z"
    assert not list(tmp_path.glob(".*part"))


def test_reader_destaggers_nonlinear_faces(tmp_path: Path) -> None:
    path = tmp_path / wrf_filename(1, T0)
    write_wrf(carrier(), path)
    faces = (np.arange(NX + 1, dtype=float) ** 2)[None, None, None, :] * np.ones((NT, NZ, NY, 1))
    with netCDF4.Dataset(path, "a") as nc:
        nc.variables["U"][:] = faces
    u = read_wrf(path)["u"].values
    np.testing.assert_allclose(u[0, 0, 0], 0.5 * (np.arange(NX) ** 2 + np.arange(1, NX + 1) ** 2))


def test_grid_relative_winds_are_rotated_to_earth(tmp_path: Path) -> None:
    path = tmp_path / wrf_filename(1, T0)
    source = carrier(rotation_deg=30.0)
    write_wrf(source, path)
    with netCDF4.Dataset(path) as nc:
        raw_u10 = np.asarray(nc.variables["U10"][:])
    assert not np.allclose(raw_u10, source["u10"].values, atol=1e-2)  # stored grid-relative
    back = read_wrf(path)
    np.testing.assert_allclose(back["u10"].values, source["u10"].values, atol=1e-5)
    np.testing.assert_allclose(back["v"].values, source["v"].values, atol=1e-5)


def test_bbox_window_and_empty_aoi(tmp_path: Path) -> None:
    path = tmp_path / wrf_filename(1, T0)
    source = carrier()
    write_wrf(source, path)
    sub = read_wrf(path, bbox=(-102.94, 31.02, -102.86, 31.1))  # columns 2-4, rows 1-3
    assert sub.sizes["south_north"] == 3 and sub.sizes["west_east"] == 3
    np.testing.assert_allclose(
        sub["u"].values, source["u"].isel(south_north=slice(1, 4), west_east=slice(2, 5)).values, atol=1e-5
    )
    with pytest.raises(EmptyAOIError):
        read_wrf(path, bbox=(10.0, 10.0, 11.0, 11.0))


def test_bad_files_raise_product_format_error(tmp_path: Path) -> None:
    path = tmp_path / wrf_filename(1, T0)
    write_wrf(carrier(), path)
    with netCDF4.Dataset(path, "a") as nc:
        nc.renameVariable("PBLH", "PBLH_renamed")
    with pytest.raises(ProductFormatError, match="PBLH"):
        read_wrf(path)

    bad = tmp_path / "wrfout_d01_2024-06-01_19:00:00"
    with netCDF4.Dataset(bad, "w") as nc:
        for name, size in (
            ("Time", 1),
            ("DateStrLen", 19),
            ("bottom_top", 1),
            ("south_north", 2),
            ("west_east", 2),
        ):
            nc.createDimension(name, size)
        nc.createVariable("Times", "S1", ("Time", "DateStrLen"))[:] = netCDF4.stringtochar(
            np.array(["2024-06-01_19:00:00"], "S19")
        )
        units = {"U10": "m s-1", "V10": "m s-1", "PBLH": "m", "PSFC": "Pa", "HGT": "m",
                 "U": "m s-1", "V": "m s-1"}
        for name in ("XLAT", "XLONG", "U10", "V10", "PBLH", "PSFC", "HGT"):
            nc.createVariable(name, "f4", ("Time", "south_north", "west_east"))[:] = 1.0
        nc.createVariable("U", "f4", ("Time", "bottom_top", "south_north", "west_east"))[:] = (
            1.0  # not staggered
        )
        nc.createVariable("V", "f4", ("Time", "bottom_top", "south_north", "west_east"))[:] = 1.0
        for name, unit in units.items():
            nc.variables[name].units = unit
    with pytest.raises(ProductFormatError, match="west_east_stag"):
        read_wrf(bad)
    with pytest.raises(ProductFormatError):
        read_wrf(tmp_path / "not_there")
