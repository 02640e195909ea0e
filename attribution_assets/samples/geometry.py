"""Viewing geometry of the sample scenes: swath grids in the local frame, sun-synchronous ground tracks,
the solar zenith angle, and scene centres placed downwind of the source."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import xarray as xr

from attribution_assets.samples.truth import Event
from attribution_assets.samples.weather import era5_wind_at, solar_hour


def bearing_vector(bearing_deg: float) -> np.ndarray:
    """Unit vector (east, north) of a bearing measured clockwise from north (deg)."""
    b = np.deg2rad(bearing_deg)
    return np.array([np.sin(b), np.cos(b)])


def swath_xy(
    centre_xy: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    row_step_m: float,
    col_step_m: float,
    row_bearing_deg: float,
    col_bearing_deg: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Local (x, y) of fractional swath indices ``rows, cols`` counted from the swath centre, m."""
    a, c = bearing_vector(row_bearing_deg), bearing_vector(col_bearing_deg)
    rows, cols = np.asarray(rows, float), np.asarray(cols, float)
    x = centre_xy[0] + rows * row_step_m * a[0] + cols * col_step_m * c[0]
    y = centre_xy[1] + rows * row_step_m * a[1] + cols * col_step_m * c[1]
    return x, y


def sun_synchronous_heading_deg(lat_deg: float, inclination_deg: float) -> float:
    """Ground-track bearing of an ascending sun-synchronous orbit at latitude ``lat_deg`` (deg).

    Spherical Earth: ``sin(azimuth) = cos(i) / cos(lat)`` (Earth rotation neglected).
    """
    return float(np.rad2deg(np.arcsin(np.cos(np.deg2rad(inclination_deg)) / np.cos(np.deg2rad(lat_deg)))))


def cos_solar_zenith(lon_deg: np.ndarray, lat_deg: np.ndarray, when: datetime) -> np.ndarray:
    """Cosine of the solar zenith angle (Cooper 1969 declination, no equation of time), 1."""
    doy = when.timetuple().tm_yday
    decl = np.deg2rad(23.44) * np.sin(2.0 * np.pi * (284 + doy) / 365.0)
    hours = when.hour + when.minute / 60.0 + when.second / 3600.0
    hour_angle = np.deg2rad(15.0 * (solar_hour(lon_deg, hours) - 12.0))
    lat = np.deg2rad(np.asarray(lat_deg, float))
    return np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)


def downwind_point_xy(ev: Event, era5: xr.Dataset, when: datetime, distance_m: float) -> np.ndarray:
    """Point ``distance_m`` from the source along the ERA5 wind at the source (local frame, m)."""
    u, v = era5_wind_at(era5, ev.source_lon, ev.source_lat, when)
    return ev.source_xy_m + distance_m * np.array([u, v]) / np.hypot(u, v)
