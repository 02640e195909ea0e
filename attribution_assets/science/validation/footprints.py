"""Observation footprints of the validation scenes: rotated rectangles, optionally blurred by a
Gaussian point-spread function.

The truth (:meth:`.puffs.PuffTrain.footprint_mean_kg_m2`) is the exact area mean of the puffs over each
rectangle; the inversion sees the same footprints through its own quadrature
(:func:`~attribution_assets.science.forward.operators.quadrilateral_quadrature` of
:meth:`Footprints.corners_xy_m`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Footprints:
    """``n`` congruent rectangles in the event's local frame (m, x east, y north).

    ``centres_xy_m`` (n, 2); ``half_along_m`` and ``half_across_m``: half side lengths (m) along and
    across ``along_rad`` (the direction of the along-track side, counter-clockwise from east);
    ``blur_m``: sd (m) of a Gaussian point-spread function through which the rectangle is seen;
    ``index_across`` (n,): the across-track position of each footprint (e.g. the OCO-2 footprint number).
    """

    centres_xy_m: np.ndarray
    half_along_m: float
    half_across_m: float
    along_rad: float = math.pi / 2
    blur_m: float = 0.0
    index_across: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of footprints."""
        return int(self.centres_xy_m.shape[0])

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors (2,) along and across track (across = along rotated by -90 degrees)."""
        along = np.array([math.cos(self.along_rad), math.sin(self.along_rad)])
        return along, np.array([along[1], -along[0]])

    @property
    def area_m2(self) -> float:
        """Area of one footprint (m2)."""
        return 4.0 * self.half_along_m * self.half_across_m

    def corners_xy_m(self) -> np.ndarray:
        """Corners (n, 4, 2) of every rectangle, counter-clockwise."""
        along, across = self.axes
        signs = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
        offsets = (signs[:, :1] * self.half_along_m * along + signs[:, 1:] * self.half_across_m * across)
        return self.centres_xy_m[:, None, :] + offsets[None]

    def local_coordinates(self, points_xy_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Along- and across-track coordinates (m) of ``points_xy_m`` (m, (p, 2)) relative to every
        footprint centre, shapes (n, p)."""
        along, across = self.axes
        d = points_xy_m[None, :, :] - self.centres_xy_m[:, None, :]
        return d @ along, d @ across

    def max_distance_m(self, point_xy_m: np.ndarray) -> float:
        """Largest distance (m) from ``point_xy_m`` to any footprint corner."""
        return float(np.max(np.hypot(*(self.corners_xy_m() - np.asarray(point_xy_m)).reshape(-1, 2).T)))


def pixel_grid(
    centre_xy_m: np.ndarray,
    n_along: int,
    n_across: int,
    pitch_along_m: float,
    pitch_across_m: float,
    along_rad: float = math.pi / 2,
    blur_m: float = 0.0,
) -> Footprints:
    """Contiguous ``n_along x n_across`` pixels of ``pitch_along_m x pitch_across_m`` (m) centred on
    ``centre_xy_m``, rows along ``along_rad``; pixel ``(i, j)`` is row ``i * n_across + j`` and its
    ``index_across`` is ``j``."""
    along = np.array([math.cos(along_rad), math.sin(along_rad)])
    across = np.array([along[1], -along[0]])
    i, j = np.meshgrid(np.arange(n_along) - (n_along - 1) / 2, np.arange(n_across) - (n_across - 1) / 2,
                       indexing="ij")
    centres = (np.asarray(centre_xy_m, float)[None, :] + (i.ravel() * pitch_along_m)[:, None] * along
               + (j.ravel() * pitch_across_m)[:, None] * across)
    index = np.tile(np.arange(n_across), n_along)
    return Footprints(centres, 0.5 * pitch_along_m, 0.5 * pitch_across_m, along_rad, blur_m, index)
