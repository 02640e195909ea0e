"""Distances on the mean Earth sphere (km): detection scans, the candidate merge, catalog footprints.

Radius ``science.units.EARTH_RADIUS_M`` (the mean radius ``R1 = (2a + b) / 3`` of the WGS84
ellipsoid); great-circle distances by the haversine formula (within ~0.5 % of the ellipsoidal distance).
"""

from __future__ import annotations

import numpy as np

from attribution_assets.science.units import EARTH_RADIUS_M

EARTH_RADIUS_KM = EARTH_RADIUS_M / 1000.0


def haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasts)."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lon1, lat1, lon2, lat2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def earth_xyz_km(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Earth-centred Cartesian coordinates (km) on the sphere, shape ``(n, 3)``."""
    lon, lat = np.radians(np.asarray(lon_deg, np.float64)), np.radians(np.asarray(lat_deg, np.float64))
    return EARTH_RADIUS_KM * np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)


def chord_km(great_circle_km: float) -> float:
    """Straight-line (chord) distance, km, between two points ``great_circle_km`` apart on the sphere."""
    return 2.0 * EARTH_RADIUS_KM * np.sin(great_circle_km / (2.0 * EARTH_RADIUS_KM))
