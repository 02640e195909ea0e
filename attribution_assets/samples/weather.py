"""Analytic weather of a sample event and the ERA5 file sampled from it.

Every field is a smooth analytic function of position and the local mean solar hour ``h`` (uniform flow +
linear gradient + diurnal cycle; the formulas are listed in ``samples/README.md``), sampled on the ERA5
0.25 degree grid by :func:`era5_dataset`. The wind at a source and overpass time is read back from that
grid (:func:`era5_wind_at`), as the pipeline's met prior reads it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import xarray as xr

from attribution_assets.samples.truth import Event, Overpass
from attribution_assets.science.units import STANDARD_PRESSURE_PA
from attribution_assets.times import iso_z, to_datetime64

SCALE_HEIGHT_M = 8400.0
"""Pressure scale height used for the barometric surface pressure and the boundary-layer top, m."""


def solar_hour(lon_deg: np.ndarray, hours_utc: np.ndarray | float) -> np.ndarray:
    """Local mean solar time in hours (0-24) from longitude (deg) and UTC hours."""
    return np.mod(np.asarray(hours_utc, float) + np.asarray(lon_deg, float) / 15.0, 24.0)


def wind10_m_s(
    ev: Event, lon: np.ndarray, lat: np.ndarray, hours_utc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Analytic 10 m wind (u east, v north; m s-1, the direction the air moves to).

    Uniform flow ``(u0, v0)`` plus a linear gradient (du/dlon, dv/dlat per degree from the alert point),
    turned anticlockwise by ``diurnal_rotation_deg * sin(2 pi (h - 9) / 24)`` and scaled by
    ``1 + 0.15 sin(2 pi (h - 10) / 24)`` with ``h`` the local solar hour (afternoon mixing strengthens
    and turns the surface wind).
    """
    u_base = ev.wind_u0_m_s + ev.wind_du_dlon_m_s_per_deg * (np.asarray(lon, float) - ev.alert_lon)
    v_base = ev.wind_v0_m_s + ev.wind_dv_dlat_m_s_per_deg * (np.asarray(lat, float) - ev.alert_lat)
    h = solar_hour(lon, hours_utc)
    turn = np.deg2rad(ev.diurnal_rotation_deg) * np.sin(2.0 * np.pi * (h - 9.0) / 24.0)
    scale = 1.0 + 0.15 * np.sin(2.0 * np.pi * (h - 10.0) / 24.0)
    u = scale * (np.cos(turn) * u_base - np.sin(turn) * v_base)
    v = scale * (np.sin(turn) * u_base + np.cos(turn) * v_base)
    return u, v


def rotate_clockwise(u: np.ndarray, v: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Turn a wind vector (m s-1) clockwise by ``angle_deg`` (its bearing increases by that angle)."""
    a = np.deg2rad(angle_deg)
    return u * np.cos(a) + v * np.sin(a), -u * np.sin(a) + v * np.cos(a)


def wind100_m_s(
    ev: Event, lon: np.ndarray, lat: np.ndarray, hours_utc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """100 m wind (m s-1): the 10 m wind x 1.3 (power-law shear), veered 12 degrees clockwise (Ekman)."""
    u10, v10 = wind10_m_s(ev, lon, lat, hours_utc)
    u, v = rotate_clockwise(u10, v10, 12.0)
    return 1.3 * u, 1.3 * v


def elevation_m(ev: Event, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Surface elevation: the event's elevation tilted by 20 m per degree north and 15 m per degree east."""
    return (
        ev.surface_elevation_m
        + 20.0 * (np.asarray(lat, float) - ev.alert_lat)
        + 15.0 * (np.asarray(lon, float) - ev.alert_lon)
    )


def surface_pressure_pa(ev: Event, lon: np.ndarray, lat: np.ndarray, hours_utc: np.ndarray) -> np.ndarray:
    """Barometric surface pressure ``101325 exp(-z / 8400 m)`` plus a 120 Pa semidiurnal tide, Pa."""
    h = solar_hour(lon, hours_utc)
    tide = 120.0 * np.cos(4.0 * np.pi * (h - 10.0) / 24.0)
    return STANDARD_PRESSURE_PA * np.exp(-elevation_m(ev, lon, lat) / SCALE_HEIGHT_M) + tide


def boundary_layer_height_m(ev: Event, lon: np.ndarray, hours_utc: np.ndarray) -> np.ndarray:
    """Diurnal boundary-layer height: 250 m at night rising to ~2100 m in the mid-afternoon, m."""
    h = solar_hour(lon, hours_utc)
    day = np.clip(np.sin(np.pi * (h - 7.0) / 12.0), 0.0, None)
    return 250.0 + 1850.0 * day**1.3 * (ev.sensible_heat_max_w_m2 / 350.0) ** 0.5


def t2m_k(ev: Event, lon: np.ndarray, lat: np.ndarray, hours_utc: np.ndarray) -> np.ndarray:
    """2 m temperature: sea-level mean - 6.5 K/km lapse + 6 K diurnal cycle peaking at 15 h local, K."""
    h = solar_hour(lon, hours_utc)
    return (
        ev.t2m_sea_level_k - 0.0065 * elevation_m(ev, lon, lat) + 6.0 * np.sin(2.0 * np.pi * (h - 9.0) / 24.0)
    )


def sensible_heat_up_w_m2(ev: Event, solar_h: np.ndarray) -> np.ndarray:
    """Upward surface sensible heat flux (W m-2): ``Hmax sin`` by day, down to -15 W m-2 at night."""
    s = np.sin(np.pi * (np.asarray(solar_h, float) - 6.5) / 13.0)
    night = np.mod(np.asarray(solar_h, float) - 6.5, 24.0) > 13.0
    return np.where(night, -15.0 * np.abs(s), ev.sensible_heat_max_w_m2 * np.clip(s, 0.0, None))


def era5_grid(ev: Event) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ERA5 0.25 degree grid over the alert +-1 degree (latitude increasing) and 24 hourly UTC steps."""
    lat0 = np.round(ev.alert_lat / 0.25) * 0.25
    lon0 = np.round(ev.alert_lon / 0.25) * 0.25
    offsets = np.arange(-4, 5) * 0.25
    times = np.array([to_datetime64(ev.day_start + timedelta(hours=h)) for h in range(24)])
    return lat0 + offsets, lon0 + offsets, times


def _var(dims: tuple[str, ...], data: np.ndarray, units: str, long_name: str) -> xr.Variable:
    return xr.Variable(dims, np.asarray(data, dtype=np.float32), {"units": units, "long_name": long_name})


def era5_dataset(ev: Event) -> xr.Dataset:
    """ERA5 single-level carrier (``time, latitude, longitude``) sampled from the analytic fields."""
    lat, lon, times = era5_grid(ev)
    hours = np.arange(24.0)[:, None, None]
    la, lo = lat[None, :, None], lon[None, None, :]
    shape = (24, lat.size, lon.size)
    u10, v10 = wind10_m_s(ev, lo, la, hours)
    u100, v100 = wind100_m_s(ev, lo, la, hours)
    solar_mid = solar_hour(lo, hours - 0.5)
    cloud = np.clip(
        ev.total_cloud_cover * (1.0 + 0.3 * np.sin(2.0 * np.pi * (solar_hour(lo, hours) - 15.0) / 24.0)),
        0.0,
        1.0,
    )
    dims = ("time", "latitude", "longitude")
    data = {
        "u10": _var(dims, u10, "m s**-1", "10 metre U wind component"),
        "v10": _var(dims, v10, "m s**-1", "10 metre V wind component"),
        "u100": _var(dims, u100, "m s**-1", "100 metre U wind component"),
        "v100": _var(dims, v100, "m s**-1", "100 metre V wind component"),
        "blh": _var(
            dims, np.broadcast_to(boundary_layer_height_m(ev, lo, hours), shape), "m", "Boundary layer height"
        ),
        "sp": _var(dims, surface_pressure_pa(ev, lo, la, hours), "Pa", "Surface pressure"),
        "t2m": _var(dims, t2m_k(ev, lo, la, hours), "K", "2 metre temperature"),
        "tcc": _var(dims, np.broadcast_to(cloud, shape), "(0 - 1)", "Total cloud cover"),
        "fsr": _var(dims, np.full(shape, ev.roughness_m), "m", "Forecast surface roughness"),
        "sshf": _var(
            dims,
            np.broadcast_to(-3600.0 * sensible_heat_up_w_m2(ev, solar_mid), shape),
            "J m**-2",
            "Surface sensible heat flux",
        ),
    }
    attrs = {
        "instrument": "ERA5",
        "product_version": "reanalysis-era5-single-levels",
        "time_coverage_start": iso_z(ev.day_start),
        "time_coverage_end": iso_z(ev.day_start + timedelta(hours=23)),
    }
    coords = {"time": times, "latitude": lat, "longitude": lon}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def era5_wind_at(era5: xr.Dataset, lon: float, lat: float, when: datetime) -> tuple[float, float]:
    """ERA5 10 m wind interpolated (bilinear in space, linear in time) at a point and time, m s-1."""
    point = (
        era5[["u10", "v10"]].astype(np.float64).interp(longitude=lon, latitude=lat, time=to_datetime64(when))
    )
    return float(point["u10"]), float(point["v10"])


def true_wind_m_s(
    u: float, v: float, speed_factor: float, direction_offset_deg: float
) -> tuple[float, float]:
    """Perturb a wind (m s-1): speed x ``speed_factor``, bearing + ``direction_offset_deg`` (clockwise)."""
    ur, vr = rotate_clockwise(np.float64(u), np.float64(v), direction_offset_deg)
    return float(speed_factor * ur), float(speed_factor * vr)


def computed_overpass_winds(ev: Event, op: Overpass, era5: xr.Dataset) -> dict[str, float]:
    """ERA5 wind at the source and overpass time, and the true (perturbed) wind, rounded to mm s-1."""
    u, v = era5_wind_at(era5, ev.source_lon, ev.source_lat, op.time)
    tu, tv = true_wind_m_s(u, v, op.wind_speed_factor, op.wind_direction_offset_deg)
    return {
        "era5_u10_m_s": round(u, 3),
        "era5_v10_m_s": round(v, 3),
        "true_u_m_s": round(tu, 3),
        "true_v_m_s": round(tv, 3),
    }
