"""Bounding boxes and longitudes in degrees: validation, point and box overlap tests (antimeridian aware)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

BBox = tuple[float, float, float, float]
"""(west, south, east, north) in degrees; west > east means the box crosses the antimeridian."""


def validate_bbox(path: str | os.PathLike[str], bbox: Sequence[float] | None) -> BBox | None:
    """Check a (west, south, east, north) box in degrees and return it as floats (None passes).

    Raises ``ValueError`` naming ``path`` (the file the box is applied to).
    """
    if bbox is None:
        return None
    if len(bbox) != 4:
        raise ValueError(f"{path}: bbox must be (west, south, east, north), got {bbox!r}")
    west, south, east, north = (float(v) for v in bbox)
    if not (-90.0 <= south <= north <= 90.0):
        raise ValueError(f"{path}: bbox latitudes must satisfy -90 <= south <= north <= 90, got {bbox!r}")
    if not all(np.isfinite([west, east])):
        raise ValueError(f"{path}: bbox longitudes must be finite, got {bbox!r}")
    return (west, south, east, north)


def overlaps_bbox(
    lon_min: np.ndarray, lon_max: np.ndarray, lat_min: np.ndarray, lat_max: np.ndarray, bbox: BBox
) -> np.ndarray:
    """Boolean mask: do the boxes [lon_min, lon_max] x [lat_min, lat_max] (degrees) touch ``bbox``?

    Longitudes are compared modulo 360, so a bbox with west > east (crossing the antimeridian) and
    inputs in either [-180, 180) or [0, 360) work. NaN inputs give False. (The same test as interval
    copies, for SQL and shapely: :func:`longitude_copies`.)
    """
    west, south, east, north = bbox
    east_unwrapped = east + 360.0 if west > east else east
    lat_ok = (lat_max >= south) & (lat_min <= north)
    lo = np.asarray(lon_min, dtype=np.float64)
    hi = np.asarray(lon_max, dtype=np.float64)
    shift = np.floor((lo - west) / 360.0) * 360.0
    lo, hi = lo - shift, hi - shift  # lo now in [west, west + 360)
    lon_ok = (lo <= east_unwrapped) | (hi >= west + 360.0)
    return np.asarray(lat_ok & lon_ok)


def longitude_copies(bbox: BBox) -> list[BBox]:
    """``bbox`` as boxes with west <= east that together cover it in every longitude convention a
    footprint may use ([-180, 180], [0, 360], or a little beyond +-180): the box with its west in
    [-180, 180), and that box shifted by -360 and +360 degrees. A box crossing the antimeridian
    (west > east) or reaching past 180 is then found by plain interval tests on either side of it
    (the catalog's SQL and shapely tests; arrays use :func:`overlaps_bbox`); a box 360 degrees wide or
    wider covers every longitude."""
    west, south, east, north = bbox
    width = east - west if west <= east else east + 360.0 - west
    if width >= 360.0:
        return [(-540.0, south, 540.0, north)]
    start = float(normalise_lon(np.array([west]))[0])
    return [(start + shift, south, start + width + shift, north) for shift in (-360.0, 0.0, 360.0)]


def in_bbox(lon: np.ndarray, lat: np.ndarray, bbox: BBox) -> np.ndarray:
    """Boolean mask of points (degrees) inside ``bbox`` (edges included, antimeridian aware)."""
    return overlaps_bbox(lon, lon, lat, lat, bbox)


def normalise_lon(lon: np.ndarray) -> np.ndarray:
    """Map longitudes in degrees to [-180, 180)."""
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
