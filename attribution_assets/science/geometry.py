"""Local metric frame around an event: azimuthal equidistant projection (pyproj/PROJ ``aeqd``).

Distances and bearings from the centre are exact; within the ~50 km of an attribution AOI the
scale error elsewhere is below 1e-4, far under any pixel size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyproj import Transformer


@dataclass(frozen=True)
class LocalFrame:
    """Metres east (``x``) and north (``y``) of the point (``lon0_deg``, ``lat0_deg``)."""

    lon0_deg: float
    lat0_deg: float
    _forward: Transformer = field(init=False, repr=False, compare=False)
    _inverse: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        proj = f"+proj=aeqd +lat_0={self.lat0_deg} +lon_0={self.lon0_deg} +datum=WGS84 +units=m +no_defs"
        object.__setattr__(self, "_forward", Transformer.from_crs("EPSG:4326", proj, always_xy=True))
        object.__setattr__(self, "_inverse", Transformer.from_crs(proj, "EPSG:4326", always_xy=True))

    def to_xy(self, lon_deg: np.ndarray, lat_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project longitudes/latitudes (degrees) to local ``(x_m, y_m)``."""
        x, y = self._forward.transform(np.asarray(lon_deg, float), np.asarray(lat_deg, float))
        return np.asarray(x), np.asarray(y)

    def to_lonlat(self, x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local ``(x_m, y_m)`` back to ``(lon_deg, lat_deg)``."""
        lon, lat = self._inverse.transform(np.asarray(x_m, float), np.asarray(y_m, float))
        return np.asarray(lon), np.asarray(lat)
