"""EMIT L1B RAD: writer fidelity, reader round trip, windowed AOI reads and bad input."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr

from attribution_assets.readers.checksum import file_checksum
from attribution_assets.readers.emit import ortho_window, read_emit_l1b
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.samples.formats.emit import emit_l1b_filename, write_emit_l1b

GT = (-102.0, 0.001, 0.0, 32.0, 0.0, -0.001)
N_DOWN, N_CROSS, N_BAND, N_Y, N_X = 12, 10, 6, 14, 13


def _glt() -> tuple[np.ndarray, np.ndarray]:
    """Ortho (i, j) -> scene (i - 1, j - 2 + i // 6), -1 outside the scene; one interior hole."""
    i, j = np.meshgrid(np.arange(N_Y), np.arange(N_X), indexing="ij")
    row, col = i - 1, j - 2 + i // 6
    ok = (row >= 0) & (row < N_DOWN) & (col >= 0) & (col < N_CROSS)
    ok[6, 6] = False
    return np.where(ok, row, -1), np.where(ok, col, -1)


def make_carrier() -> xr.Dataset:
    rng = np.random.default_rng(1)
    radiance = rng.uniform(0.5, 12.0, (N_DOWN, N_CROSS, N_BAND)).astype(np.float32)
    radiance[3, 4, :] = np.nan
    glt_row, glt_col = _glt()
    rows, cols = np.meshgrid(np.arange(N_DOWN), np.arange(N_CROSS), indexing="ij")
    return xr.Dataset(
        {
            "radiance": (("downtrack", "crosstrack", "band"), radiance, {"units": "uW/cm^2/SR/nm"}),
            "glt_row": (("y", "x"), glt_row.astype(np.int32)),
            "glt_col": (("y", "x"), glt_col.astype(np.int32)),
            "elev": (("downtrack", "crosstrack"), rng.uniform(0, 900, (N_DOWN, N_CROSS))),
        },
        coords={
            "wavelength": ("band", np.linspace(2100.0, 2400.0, N_BAND)),
            "fwhm": ("band", np.full(N_BAND, 8.5)),
            "lat": (("downtrack", "crosstrack"), GT[3] + (rows + 1.5) * GT[5]),
            "lon": (("downtrack", "crosstrack"), GT[0] + (cols + 2.5) * GT[1]),
            "y_lat": ("y", GT[3] + (np.arange(N_Y) + 0.5) * GT[5]),
            "x_lon": ("x", GT[0] + (np.arange(N_X) + 0.5) * GT[1]),
        },
        attrs={"time_coverage_start": "2024-10-06T16:52:00Z", "time_coverage_end": "2024-10-06T16:52:12Z"},
    )


@pytest.fixture()
def emit_file(tmp_path: Path) -> Path:
    name = emit_l1b_filename(datetime(2024, 10, 6, 16, 52), "2428011", 7)
    path = tmp_path / name
    write_emit_l1b(make_carrier(), path)
    return path


def test_filename_follows_native_pattern() -> None:
    start = datetime(2024, 10, 6, 16, 52, 0, tzinfo=UTC)
    assert emit_l1b_filename(start, "2428011", 7) == "EMIT_L1B_RAD_001_20241006T165200_2428011_007.nc"
    with pytest.raises(ValueError):
        emit_l1b_filename(start, "24280", 7)


def test_written_file_matches_documented_layout(emit_file: Path) -> None:
    with netCDF4.Dataset(emit_file) as nc:
        assert {d: len(v) for d, v in nc.dimensions.items()} == {
            "downtrack": N_DOWN,
            "crosstrack": N_CROSS,
            "bands": N_BAND,
            "ortho_y": N_Y,
            "ortho_x": N_X,
        }
        rad = nc["radiance"]
        assert rad.dimensions == ("downtrack", "crosstrack", "bands")
        assert rad.dtype == np.float32 and rad._FillValue == -9999 and rad.units == "uW/cm^2/SR/nm"
        assert rad.filters()["zlib"]
        assert set(nc.groups) == {"sensor_band_parameters", "location"}
        band = nc["sensor_band_parameters"]
        assert band["wavelengths"].units == "nm" and band["fwhm"].dimensions == ("bands",)
        loc = nc["location"]
        for name in ("lat", "lon", "elev"):
            assert loc[name].dtype == np.float64 and loc[name]._FillValue == -9999
        for name in ("glt_x", "glt_y"):
            assert loc[name].dtype == np.int32 and loc[name]._FillValue == -9999
            assert loc[name].dimensions == ("ortho_y", "ortho_x")
        glt_row, glt_col = _glt()
        np.testing.assert_array_equal(np.asarray(loc["glt_y"][:]), np.where(glt_row >= 0, glt_row + 1, 0))
        np.testing.assert_array_equal(np.asarray(loc["glt_x"][:]), np.where(glt_col >= 0, glt_col + 1, 0))
        np.testing.assert_allclose(nc.geotransform, GT, atol=1e-12)
        assert nc.time_coverage_start == "2024-10-06T16:52:00+0000"
        assert nc.product_version == "V001" and nc.instrument == "EMIT" and nc.platform == "ISS"
        assert nc.title == "EMIT L1B At-Sensor Calibrated Radiance Data 60 m V001"
        assert 'AUTHORITY["EPSG","4326"]' in nc.spatial_ref
        assert nc.northernmost_latitude == pytest.approx(32.0)
        assert nc.southernmost_latitude == pytest.approx(32.0 - N_Y * 0.001)
        assert nc.westernmost_longitude == pytest.approx(-102.0)
        assert nc.easternmost_longitude == pytest.approx(-102.0 + N_X * 0.001)
        assert "flight_line" in nc.ncattrs()


def test_full_read_round_trips_the_carrier(emit_file: Path) -> None:
    carrier = make_carrier()
    ds = read_emit_l1b(emit_file)
    np.testing.assert_allclose(ds["radiance"].values, carrier["radiance"].values, atol=1e-3)
    assert np.isnan(ds["radiance"].values[3, 4]).all()
    np.testing.assert_array_equal(ds["glt_row"].values, carrier["glt_row"].values)
    np.testing.assert_array_equal(ds["glt_col"].values, carrier["glt_col"].values)
    np.testing.assert_allclose(ds["y_lat"].values, carrier["y_lat"].values)
    np.testing.assert_allclose(ds["x_lon"].values, carrier["x_lon"].values)
    np.testing.assert_allclose(ds["lat"].values, carrier["lat"].values)
    np.testing.assert_allclose(ds["wavelength"].values, carrier["wavelength"].values, rtol=1e-6)
    np.testing.assert_allclose(ds["elev"].values, carrier["elev"].values)
    assert ds["glt_row"].dtype == np.int32
    assert ds.attrs["time_coverage_start"] == "2024-10-06T16:52:00Z"
    assert ds.attrs["product_version"] == "V001" and ds.attrs["instrument"] == "EMIT"
    assert ds.attrs["checksum"] == file_checksum(emit_file) and ds.attrs["source_file"] == str(emit_file)
    assert ds.attrs["checksum"].startswith(f"sha256-headtail-v1:{emit_file.stat().st_size}:")


def test_windowed_read_returns_only_the_referenced_slab(emit_file: Path) -> None:
    full = read_emit_l1b(emit_file)
    # columns 4..7 and rows 2..5 of the ortho grid
    bbox = (GT[0] + 4.2 * GT[1], GT[3] + 5.8 * GT[5], GT[0] + 7.8 * GT[1], GT[3] + 2.2 * GT[5])
    sub = read_emit_l1b(emit_file, bbox)
    assert sub.sizes["y"] == 4 and sub.sizes["x"] == 4
    np.testing.assert_allclose(sub["y_lat"].values, full["y_lat"].values[2:6])
    np.testing.assert_allclose(sub["x_lon"].values, full["x_lon"].values[4:8])
    # GLT rows 1..4, cols 2..5 -> a 4 x 4 radiance slab, not the 12 x 10 scene
    assert sub["radiance"].shape == (4, 4, N_BAND)
    row, col = sub["glt_row"].values, sub["glt_col"].values
    full_row, full_col = full["glt_row"].values[2:6, 4:8], full["glt_col"].values[2:6, 4:8]
    valid = row >= 0
    np.testing.assert_array_equal(valid, full_row >= 0)
    np.testing.assert_array_equal(
        sub["radiance"].values[row[valid], col[valid]],
        full["radiance"].values[full_row[valid], full_col[valid]],
    )
    np.testing.assert_array_equal(
        sub["lat"].values[row[valid], col[valid]], full["lat"].values[full_row[valid], full_col[valid]]
    )


def test_windowed_read_takes_longitudes_modulo_360(emit_file: Path) -> None:
    """The same box in [0, 360) longitudes, or shifted by a turn, reads the same pixels; so does a box
    across the antimeridian for a scene that starts just east of it."""
    bbox = (GT[0] + 4.2 * GT[1], GT[3] + 5.8 * GT[5], GT[0] + 7.8 * GT[1], GT[3] + 2.2 * GT[5])
    sub = read_emit_l1b(emit_file, bbox)
    for shift in (360.0, -360.0):
        again = read_emit_l1b(emit_file, (bbox[0] + shift, bbox[1], bbox[2] + shift, bbox[3]))
        np.testing.assert_array_equal(again["radiance"].values, sub["radiance"].values)
        np.testing.assert_array_equal(again["x_lon"].values, sub["x_lon"].values)
    scene = (-179.999, 0.001, 0.0, -16.7, 0.0, -0.001)
    across = ortho_window(scene, (N_Y, N_X), (179.99, -16.7095, -179.9955, -16.7055))
    assert across == (slice(5, 10), slice(0, 4))  # 179.99 E is 0.011 degrees (11 pixels) west of it
    assert ortho_window(scene, (N_Y, N_X), (179.99 - 360.0, -16.7095, -179.9955, -16.7055)) == across


def test_band_window_reads_only_the_bands_inside(emit_file: Path) -> None:
    full = read_emit_l1b(emit_file)
    wl = full["wavelength"].values
    window = (float(wl[2]) - 0.1, float(wl[4]) + 0.1)
    part = read_emit_l1b(emit_file, window_nm=window)
    np.testing.assert_array_equal(part["wavelength"].values, wl[2:5])
    np.testing.assert_array_equal(part["fwhm"].values, full["fwhm"].values[2:5])
    np.testing.assert_array_equal(part["radiance"].values, full["radiance"].values[..., 2:5])
    assert part["radiance"].dtype == np.float32
    with pytest.raises(EmptyAOIError, match="no band centre"):
        read_emit_l1b(emit_file, window_nm=(float(wl[-1]) + 1.0, float(wl[-1]) + 2.0))


def test_bbox_outside_the_scene_is_an_empty_aoi(emit_file: Path) -> None:
    with pytest.raises(EmptyAOIError, match=emit_file.name):
        read_emit_l1b(emit_file, (10.0, 10.0, 10.1, 10.1))
    corner = (GT[0] + 0.1 * GT[1], GT[3] + 0.9 * GT[5], GT[0] + 0.9 * GT[1], GT[3] + 0.1 * GT[5])
    with pytest.raises(EmptyAOIError, match="no GLT pixel"):
        read_emit_l1b(emit_file, corner)  # ortho pixel (0, 0) has no data


def test_truncated_file_is_a_format_error(emit_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "truncated.nc"
    broken.write_bytes(emit_file.read_bytes()[: emit_file.stat().st_size // 2])
    with pytest.raises(ProductFormatError, match="truncated.nc"):
        read_emit_l1b(broken)


def test_missing_variable_and_wrong_units_are_named(emit_file: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.nc"
    shutil.copy(emit_file, missing)
    with h5py.File(missing, "a") as h5:
        del h5["location/glt_x"]
    with pytest.raises(ProductFormatError, match=r"missing\.nc.*location/glt_x"):
        read_emit_l1b(missing)
    units = tmp_path / "units.nc"
    shutil.copy(emit_file, units)
    with netCDF4.Dataset(units, "a") as nc:
        nc["radiance"].units = "W/m^2/sr/um"
    with pytest.raises(ProductFormatError, match=r"units\.nc.*'radiance'.*uW/cm\^2/SR/nm") as info:
        read_emit_l1b(units)
    assert info.value.variable == "radiance" and isinstance(info.value, ValueError)
