"""Met prior from ERA5 and WRF carriers: exact interpolation, uncertainty model, stability, selection."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import xarray as xr

from attribution_assets.science.met import stability
from attribution_assets.science.met.source import choose_met, choose_met_source, covers
from attribution_assets.science.met.wind import ERA5, WRF, wind_at

T0 = np.datetime64("2024-06-01T00:00", "ns")


def _hours(t: np.ndarray) -> np.ndarray:
    return (t - T0).astype("timedelta64[s]").astype(float) / 3600.0


def _u(lon, lat, hours):
    return 2.0 + 0.5 * (lon - 10.0) + 0.3 * (lat - 40.0) + 0.1 * hours


def _v(lon, lat, hours):
    return -1.0 + 0.2 * (lon - 10.0) - 0.4 * (lat - 40.0) + 0.05 * hours


def era5_linear(**extra: np.ndarray) -> xr.Dataset:
    """ERA5 carrier whose fields are linear in longitude, latitude and time."""
    time = T0 + np.arange(6) * np.timedelta64(1, "h")
    lat = np.arange(40.0, 41.01, 0.25)
    lon = np.arange(10.0, 11.01, 0.25)
    t3, la3, lo3 = np.meshgrid(_hours(time), lat, lon, indexing="ij")
    dims = ("time", "latitude", "longitude")
    data = {
        "u10": (dims, _u(lo3, la3, t3)),
        "v10": (dims, _v(lo3, la3, t3)),
        "u100": (dims, 1.3 * _u(lo3, la3, t3)),
        "v100": (dims, 1.3 * _v(lo3, la3, t3)),
        "blh": (dims, 500.0 + 100.0 * t3 + 10.0 * (lo3 - 10.0)),
        "sp": (dims, 98000.0 + 50.0 * (la3 - 40.0)),
        "tcc": (dims, np.full(t3.shape, 0.1)),
    }
    data.update({k: (dims, v) for k, v in extra.items()})
    return xr.Dataset(data, coords={"time": time, "latitude": lat, "longitude": lon})


def test_era5_interpolation_is_exact_for_linear_fields() -> None:
    era5 = era5_linear()
    lon, lat, when = 10.37, 40.61, datetime(2024, 6, 1, 2, 20)
    wind = wind_at(era5, ERA5, lon, lat, when)
    hours = 2.0 + 20.0 / 60.0
    assert wind.u_m_s == pytest.approx(_u(lon, lat, hours), abs=1e-9)
    assert wind.v_m_s == pytest.approx(_v(lon, lat, hours), abs=1e-9)
    assert wind.u10_m_s == wind.u_m_s and wind.v10_m_s == wind.v_m_s
    assert wind.u_pbl_m_s == pytest.approx(1.3 * wind.u_m_s, abs=1e-9)
    assert wind.pblh_m == pytest.approx(500.0 + 100.0 * hours + 10.0 * 0.37, abs=1e-6)
    assert wind.surface_pressure_pa == pytest.approx(98000.0 + 50.0 * 0.61, abs=1e-6)
    assert wind.source == "ERA5"
    assert wind.time == datetime(2024, 6, 1, 2, 20, tzinfo=UTC)


def test_era5_decreasing_latitude_and_aware_time_accepted() -> None:
    era5 = era5_linear().isel(latitude=slice(None, None, -1))
    when = datetime(2024, 6, 1, 3, 50, tzinfo=timezone(timedelta(hours=2)))  # 01:50 UTC
    wind = wind_at(era5, ERA5, 10.9, 40.1, when)
    assert wind.u_m_s == pytest.approx(_u(10.9, 40.1, 1.0 + 50 / 60), abs=1e-9)


@pytest.mark.parametrize(
    ("speed", "expected_sd", "expected_dir_deg"),
    [
        (2.0, 1.0, math.degrees(math.atan(0.5))),  # <= 3 m/s: 50 % of the speed
        (6.0, 1.5, math.degrees(math.atan(0.25))),  # > 3 m/s: 1.5 m/s
        (20.0, 1.5, 10.0),  # direction floor
    ],
)
def test_uncertainty_floor_applies_to_a_uniform_field(
    speed: float, expected_sd: float, expected_dir_deg: float
) -> None:
    era5 = era5_linear()
    era5["u10"] = xr.full_like(era5["u10"], speed)
    era5["v10"] = xr.full_like(era5["v10"], 0.0)
    wind = wind_at(era5, ERA5, 10.5, 40.5, T0 + np.timedelta64(2, "h"))
    assert wind.speed_sd_m_s == pytest.approx(expected_sd)
    assert math.degrees(wind.direction_sd_rad) == pytest.approx(expected_dir_deg)


def test_spread_of_neighbours_exceeds_floor() -> None:
    era5 = era5_linear()
    # u10 = 5 + 20 (lon - 10): neighbouring columns (0.25 deg apart) differ by 5 m/s, v = 0
    era5["u10"] = 5.0 + 20.0 * (era5["longitude"] - 10.0) + 0.0 * era5["u10"]
    era5["v10"] = xr.zeros_like(era5["v10"])
    wind = wind_at(era5, ERA5, 10.5, 40.5, T0 + np.timedelta64(2, "h"))
    assert wind.u_m_s == pytest.approx(15.0)
    assert wind.speed_sd_m_s == pytest.approx(5.0 * math.sqrt(2.0 / 3.0), rel=1e-9)


def test_era5_errors_name_what_is_missing() -> None:
    era5 = era5_linear()
    with pytest.raises(ValueError, match="outside the ERA5 file's range"):
        wind_at(era5, ERA5, 10.5, 40.5, datetime(2024, 6, 2, 0, 0))
    with pytest.raises(ValueError, match="longitude"):
        wind_at(era5, ERA5, 12.0, 40.5, T0)
    with pytest.raises(ValueError, match="u10"):
        wind_at(era5.drop_vars("u10"), ERA5, 10.5, 40.5, T0)


def _era5_across_the_antimeridian(lons: np.ndarray) -> xr.Dataset:
    """An ERA5 carrier on ``lons`` (degrees, mapped to [-180, 180) and sorted, as the reader gives
    them) whose wind is linear in the longitude east of 170 E, unwrapped across 180."""
    lons = np.sort((lons + 180.0) % 360.0 - 180.0)
    time = T0 + np.arange(2) * np.timedelta64(1, "h")
    lat = np.array([-17.25, -17.0, -16.75])
    east_of_170 = (lons - 170.0) % 360.0
    u = np.broadcast_to(2.0 + 0.5 * east_of_170, (time.size, lat.size, lons.size))
    dims = ("time", "latitude", "longitude")
    return xr.Dataset({"u10": (dims, u), "v10": (dims, np.full(u.shape, -1.0))},
                      coords={"time": time, "latitude": lat, "longitude": lons})


@pytest.mark.parametrize("grid", ["global", "regional"])
def test_era5_interpolation_across_the_antimeridian(grid: str) -> None:
    """A global grid (0 .. 359.75 E) and a download across 180 (179.25 E .. 179.25 W) both give the
    exact linear wind on either side of 180 and between their last column (179.75) and 180."""
    lons = np.arange(0.0, 360.0, 0.25) if grid == "global" else np.arange(179.25, 180.76, 0.25)
    era5 = _era5_across_the_antimeridian(lons)
    for lon in (179.6, 179.9, 180.0, -179.9, -179.6):
        wind = wind_at(era5, ERA5, lon, -17.1, T0)
        assert wind.u_m_s == pytest.approx(2.0 + 0.5 * ((lon - 170.0) % 360.0), abs=1e-9), lon
    if grid == "regional":  # the rest of the globe is not in the download
        with pytest.raises(ValueError, match="longitude 0.0 is outside the ERA5 file's longitudes"):
            wind_at(era5, ERA5, 0.0, -17.1, T0)
        assert not covers(era5, ERA5, 179.0, -17.1, T0)


def test_missing_optional_fields_fall_back_with_notes() -> None:
    wind = wind_at(era5_linear().drop_vars(["blh", "sp", "u100", "v100"]), ERA5, 10.5, 40.5, T0)
    assert wind.pblh_m == 1000.0 and wind.surface_pressure_pa == 101325.0
    assert "blh absent" in wind.notes and "sp absent" in wind.notes
    assert wind.u_pbl_m_s == wind.u_m_s


def test_pressure_levels_give_the_boundary_layer_mean() -> None:
    era5 = era5_linear()
    levels = np.array([1000.0, 925.0, 850.0, 700.0])
    profile = np.array([4.0, 6.0, 9.0, 15.0])
    shape = (era5.sizes["time"], levels.size, era5.sizes["latitude"], era5.sizes["longitude"])
    dims = ("time", "pressure_level", "latitude", "longitude")
    era5 = era5.assign_coords(pressure_level=levels)
    era5["u"] = (dims, np.broadcast_to(profile[None, :, None, None], shape).copy())
    era5["v"] = (dims, np.zeros(shape))
    era5["sp"] = xr.full_like(era5["sp"], 100000.0)
    era5["blh"] = xr.full_like(era5["blh"], 1000.0)  # top at 1000 hPa * exp(-1/8) = 882.5 hPa
    wind = wind_at(era5, ERA5, 10.5, 40.5, T0)
    assert wind.u_pbl_m_s == pytest.approx(5.0)  # levels 1000 and 925 hPa (sp is 1000 hPa)
    assert wind.v_pbl_m_s == pytest.approx(0.0)


def test_stability_from_pasquill_and_from_obukhov() -> None:
    era5 = era5_linear()
    when = T0 + np.timedelta64(1, "h")  # 01 UTC at 10.5 E: night
    wind = wind_at(era5, ERA5, 10.5, 40.5, when)
    elevation = float(stability.solar_elevation_deg(when, 10.5, 40.5))
    assert elevation < 0
    assert wind.stability_index == stability.pasquill_gifford_index(wind.speed_m_s, elevation, 0.1)
    assert wind.stability_method.startswith("Pasquill")

    shape = era5["u10"].shape
    flux = era5_linear(
        sshf=np.full(shape, -300.0 * 3600.0), fsr=np.full(shape, 0.1), t2m=np.full(shape, 300.0)
    )
    unstable = wind_at(flux, ERA5, 10.5, 40.5, when)
    assert unstable.stability_method.startswith("Golder")
    assert unstable.stability_index < 1.0  # strong upward heat flux at ~2 m/s: A-B


def wrf_linear(i0: float = 0.0) -> xr.Dataset:
    """WRF carrier on a sheared curvilinear grid; u10/v10 linear in lon/lat/time."""
    ny, nx = 12, 15
    j, i = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float) + i0, indexing="ij")
    lon = 10.2 + 0.03 * i + 0.006 * j
    lat = 40.2 + 0.004 * i + 0.025 * j
    time = T0 + np.arange(4) * np.timedelta64(1, "h")
    hours = _hours(time)[:, None, None]
    dims = ("time", "south_north", "west_east")
    return xr.Dataset(
        {
            "u10": (dims, _u(lon, lat, hours)),
            "v10": (dims, _v(lon, lat, hours)),
            "u_bl": (dims, 1.2 * _u(lon, lat, hours)),
            "v_bl": (dims, 1.2 * _v(lon, lat, hours)),
            "pblh": (dims, np.broadcast_to(800.0 + 0.0 * lon, (4, ny, nx)).copy()),
            "psfc": (dims, np.broadcast_to(97000.0 + 0.0 * lon, (4, ny, nx)).copy()),
        },
        coords={"time": time, "lat": (dims[1:], lat), "lon": (dims[1:], lon)},
    )


def test_wrf_interpolation_is_exact_on_curvilinear_grid() -> None:
    wrf = wrf_linear()
    lon, lat, when = 10.41, 40.43, T0 + np.timedelta64(90, "m")
    wind = wind_at(wrf, WRF, lon, lat, when)
    assert wind.u_m_s == pytest.approx(_u(lon, lat, 1.5), abs=1e-9)
    assert wind.v_m_s == pytest.approx(_v(lon, lat, 1.5), abs=1e-9)
    assert wind.u_pbl_m_s == pytest.approx(1.2 * _u(lon, lat, 1.5), abs=1e-9)
    assert wind.pblh_m == pytest.approx(800.0) and wind.surface_pressure_pa == pytest.approx(97000.0)
    assert wind.source == "WRF"


def test_choose_met_prefers_wrf_where_it_covers() -> None:
    era5, wrf = era5_linear(), wrf_linear()
    inside = (10.41, 40.43, T0 + np.timedelta64(90, "m"))
    assert covers(wrf, WRF, *inside)
    assert choose_met(*inside, era5=[era5], wrf=[wrf]).source == "WRF"
    outside_space = (10.9, 40.9, T0 + np.timedelta64(90, "m"))
    assert not covers(wrf, WRF, *outside_space)
    assert choose_met(*outside_space, era5=[era5], wrf=[wrf]).source == "ERA5"
    outside_time = (10.41, 40.43, T0 + np.timedelta64(5, "h"))
    assert choose_met(*outside_time, era5=[era5], wrf=[wrf]).source == "ERA5"
    with pytest.raises(ValueError, match="outside the WRF domain"):
        choose_met(*outside_space, wrf=[wrf])
    with pytest.raises(ValueError, match="neither"):
        choose_met(*inside)


def test_choose_met_source_tries_every_wrf_run_before_era5() -> None:
    era5, outer, inner = era5_linear(), wrf_linear(i0=40.0), wrf_linear()
    inside = (10.41, 40.43, T0 + np.timedelta64(90, "m"))
    assert not covers(outer, WRF, *inside)
    carrier, chosen = choose_met_source(*inside, era5=[era5], wrf=[outer, inner])
    assert carrier is WRF and chosen is inner
    with pytest.raises(ValueError, match="outside the WRF domain.*outside the ERA5 file's range"):
        choose_met_source(10.41, 40.43, T0 + np.timedelta64(30, "h"), era5=[era5], wrf=[outer])


def test_one_extractor_for_both_layouts() -> None:
    """The same fields laid out as ERA5 (1-D coordinates) and as WRF (2-D) give the same wind."""
    era5 = era5_linear()
    lat2d, lon2d = xr.broadcast(era5["latitude"], era5["longitude"])
    dims = {"latitude": "south_north", "longitude": "west_east"}
    as_wrf = (
        era5.drop_vars("tcc")
        .rename({"blh": "pblh", "sp": "psfc", "u100": "u_bl", "v100": "v_bl"})
        .assign_coords(lat=lat2d, lon=lon2d)
        .swap_dims(dims)
        .drop_vars(["latitude", "longitude"])
    )
    when = T0 + np.timedelta64(100, "m")
    a = wind_at(era5, ERA5, 10.37, 40.61, when)
    b = wind_at(as_wrf, WRF, 10.37, 40.61, when, cloud_fraction=0.1)
    for name in ("u_m_s", "v_m_s", "speed_sd_m_s", "direction_sd_rad", "pblh_m", "surface_pressure_pa",
                 "u_pbl_m_s", "v_pbl_m_s", "stability_index"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), rel=1e-9, abs=1e-9), name
    assert (a.source, b.source) == ("ERA5", "WRF")
