"""A Lagrangian Gaussian-puff model of a continuous point source: the validation scenes' plume physics.

A continuous release of ``Q`` (kg s-1) is a train of puffs (Zannetti 1990, *Air Pollution Modeling*,
the chapter on puff models): the puff released at age bin ``[e_k, e_k+1)`` before the overpass
carries ``Q (e_k+1 - e_k)`` kg, is advected by the true, time-varying wind
(:class:`.meander.WindSeries`) from its release time to the overpass and spreads isotropically in the
horizontal with the distance ``d`` it has travelled,

    sigma(d) = sqrt(sigma_0^2 + (a d^b)^2)                                         [m]

with the instantaneous-puff coefficients of Slade (1968, *Meteorology and Atomic Energy*,
TID-24190, pp. 163-175; the puff table of CCPS 1999, *Guidelines for Consequence Analysis of
Chemical Releases*): ``a = 0.18, 0.14, 0.10, 0.06, 0.04, 0.02`` and ``b = 0.92`` (0.89 for F) for
Pasquill-Gifford classes A-F, linear in the stability index between classes, and a source size
``sigma_0`` of 10 m. A puff's vertical extent does not matter for a column: integrated over height
(ground reflection, no loss) a puff of mass ``m`` is the 2-D Gaussian column

    Omega(r) = m / (2 pi sigma^2) exp(-r^2 / (2 sigma^2))                           [kg m-2].

This differs from the inversion's plume (:mod:`attribution_assets.science.forward.plume`) in every
respect that matters: the puffs follow the meandering, gusting wind instead of one straight
centre line, and their spread is the instantaneous (relative) dispersion of Slade, narrower than the
Briggs (1973) plume spread, which includes the meander of a ~10-60 min average.

Puffs are released at ages spaced so that neighbours overlap (spacing at most ``PUFF_OVERLAP`` of
the puff sigma at the mean wind speed, at least ``MIN_RELEASE_STEP_S``): a uniform release every
20-30 s would space puffs 40-200 m apart near the source, where sigma is 10-20 m, and turn the plume
into beads. With overlapping puffs the crosswind integral of the column is ``Q / u`` at every
distance of a steady wind (the cross-sectional flux relation of Varon et al. 2018, AMT 11, 5673),
up to the along-wind spreading of growing puffs (~0.1 % for these sigma curves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from attribution_assets.science.validation.footprints import Footprints
from attribution_assets.science.validation.meander import WindSeries

SLADE_PUFF_SIGMA = np.array(
    [[0.18, 0.92], [0.14, 0.92], [0.10, 0.92], [0.06, 0.92], [0.04, 0.92], [0.02, 0.89]]
)
"""Instantaneous-puff horizontal spread ``sigma = a d^b`` (m, d in m), ``(a, b)`` for classes A-F
(Slade 1968)."""
SOURCE_SIGMA_M = 10.0
"""Initial puff sd (m): the size of the emitting facility."""
PUFF_OVERLAP = 0.7
"""Largest puff spacing at the mean wind, as a fraction of the puff sigma."""
MIN_RELEASE_STEP_S = 1.0
"""Shortest interval (s) between puff releases."""
_CHUNK_ELEMENTS = 1 << 20


def puff_sigma_m(
    distance_m: np.ndarray | float, stability_index: float, source_sigma_m: float = SOURCE_SIGMA_M
) -> np.ndarray:
    """Horizontal sd (m) of a puff that has travelled ``distance_m`` (m): Slade (1968) ``a d^b`` for the
    stability index (0 = A ... 5 = F, linear between classes) and ``source_sigma_m`` in quadrature."""
    s = min(max(float(stability_index), 0.0), 5.0)
    lower = min(int(math.floor(s)), 4)
    frac = s - lower
    d = np.maximum(np.asarray(distance_m, float), 0.0)
    lo, hi = SLADE_PUFF_SIGMA[lower], SLADE_PUFF_SIGMA[lower + 1]
    spread = (1.0 - frac) * lo[0] * d ** lo[1] + frac * hi[0] * d ** hi[1]
    return np.sqrt(source_sigma_m**2 + spread**2)


def release_ages_s(
    duration_s: float,
    speed_m_s: float,
    stability_index: float,
    source_sigma_m: float = SOURCE_SIGMA_M,
    overlap: float = PUFF_OVERLAP,
    min_step_s: float = MIN_RELEASE_STEP_S,
) -> np.ndarray:
    """Edges (s, increasing from 0 to ``duration_s``) of the age bins of the puffs: each step is
    ``overlap`` puff sigmas at the young end of the bin, travelled at ``speed_m_s``."""
    speed = max(float(speed_m_s), 0.1)
    edges = [0.0]
    while edges[-1] < duration_s:
        sigma = float(puff_sigma_m(speed * edges[-1], stability_index, source_sigma_m))
        edges.append(min(edges[-1] + max(min_step_s, overlap * sigma / speed), duration_s))
    return np.asarray(edges)


def _interval_probability(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``P(lo < Z < hi)`` for standard normal ``Z``, accurate in both tails."""
    upper = lo > 0.0
    return np.where(upper, ndtr(-lo) - ndtr(-hi), ndtr(hi) - ndtr(lo))


@dataclass(frozen=True)
class PuffTrain:
    """The puffs of one source at one instant: centres ``x_m, y_m`` (m, local frame), horizontal sd
    ``sigma_m`` (m) and mass ``mass_kg`` (kg), all of shape (n,); no puffs for a zero rate."""

    x_m: np.ndarray
    y_m: np.ndarray
    sigma_m: np.ndarray
    mass_kg: np.ndarray

    @property
    def total_mass_kg(self) -> float:
        """Mass of all puffs (kg)."""
        return float(np.sum(self.mass_kg))

    def column_kg_m2(self, points_xy_m: np.ndarray) -> np.ndarray:
        """Column enhancement (kg m-2) at ``points_xy_m`` (m, (..., 2)): the sum of the puffs' 2-D
        Gaussians."""
        points = np.asarray(points_xy_m, float)
        flat = points.reshape(-1, 2)
        out = np.zeros(flat.shape[0])
        if self.mass_kg.size:
            peak = self.mass_kg / (2.0 * np.pi * self.sigma_m**2)
            for rows in _chunks(flat.shape[0], self.mass_kg.size):
                dx = flat[rows, 0:1] - self.x_m[None, :]
                dy = flat[rows, 1:2] - self.y_m[None, :]
                out[rows] = np.exp(-0.5 * (dx**2 + dy**2) / self.sigma_m**2) @ peak
        return out.reshape(points.shape[:-1])

    def footprint_mean_kg_m2(self, footprints: Footprints) -> np.ndarray:
        """Exact mean column (kg m-2) over each footprint rectangle seen through its Gaussian blur
        (n,): per puff the product of two normal interval probabilities (the puff is isotropic, so
        it stays separable in the rotated footprint axes; the blur adds in quadrature to its sd)."""
        out = np.zeros(footprints.size)
        if not self.mass_kg.size:
            return out
        sigma = np.sqrt(self.sigma_m**2 + footprints.blur_m**2)[None, :]
        centres = np.stack([self.x_m, self.y_m], axis=-1)
        ha, hc = footprints.half_along_m, footprints.half_across_m
        for rows in _chunks(footprints.size, self.mass_kg.size):
            part = Footprints(footprints.centres_xy_m[rows], ha, hc, footprints.along_rad, footprints.blur_m)
            a, c = part.local_coordinates(centres)
            p_along = _interval_probability((-ha - a) / sigma, (ha - a) / sigma)
            p_across = _interval_probability((-hc - c) / sigma, (hc - c) / sigma)
            out[rows] = (p_along * p_across) @ self.mass_kg
        return out / footprints.area_m2


def _chunks(n_rows: int, n_puffs: int) -> list[slice]:
    """Row slices that keep each (rows x puffs) temporary under ``_CHUNK_ELEMENTS`` elements."""
    step = max(1, _CHUNK_ELEMENTS // max(n_puffs, 1))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def puff_train(
    source_xy_m: np.ndarray,
    rate_kg_s: float,
    wind: WindSeries,
    t_obs_s: float,
    duration_s: float,
    stability_index: float,
    source_sigma_m: float = SOURCE_SIGMA_M,
) -> PuffTrain:
    """The puffs at ``t_obs_s`` of a source at ``source_xy_m`` (m) emitting ``rate_kg_s`` (kg s-1) since
    ``t_obs_s - duration_s``, advected by ``wind`` (which must cover that interval).

    Each puff carries ``rate x`` its age bin (:func:`release_ages_s` at the mean speed of the release
    period), sits at the source plus the wind's displacement since its release (bin midpoint) and has
    the sigma of the path length travelled (:func:`puff_sigma_m`). A zero rate gives no puffs.
    """
    if rate_kg_s <= 0.0:
        empty = np.zeros(0)
        return PuffTrain(empty, empty, empty, empty)
    if wind.t0_s > t_obs_s - duration_s + 1e-6:
        raise ValueError(f"wind series starts at {wind.t0_s} s, after the release start "
                         f"{t_obs_s - duration_s} s")
    speed = wind.mean_speed_m_s(t_obs_s - duration_s, t_obs_s)
    edges = release_ages_s(duration_s, speed, stability_index, source_sigma_m)
    released = t_obs_s - 0.5 * (edges[1:] + edges[:-1])
    shift = wind.displacement_m(t_obs_s)[None, :] - wind.displacement_m(released)
    travelled = wind.path_length_m(t_obs_s) - wind.path_length_m(released)
    source = np.asarray(source_xy_m, float)
    return PuffTrain(
        x_m=source[0] + shift[:, 0],
        y_m=source[1] + shift[:, 1],
        sigma_m=puff_sigma_m(travelled, stability_index, source_sigma_m),
        mass_kg=rate_kg_s * np.diff(edges),
    )
