"""Spatially correlated retrieval error of an imager: a Gaussian Markov random field fitted per block.

A matched filter turns surface spectral structure into enhancements that are correlated over a few
pixels (EMIT: Cusworth et al. 2019, AMT 12, 5655; Thorpe et al. 2023, Sci. Adv. 9, eadh2391) and
that the reported per-pixel sd does not include. With independent errors the likelihood reads such
clutter as many independent observations of a plume. Tempering the block
(:mod:`~attribution_assets.science.inversion.structured_error`) keeps that honest but throws away
information the clutter does not touch: clutter is smooth, a plume's edges are not. The likelihood
with the errors' covariance (generalised least squares) keeps it.

The error of block ``b``, normalised by its reported sd ``s_i``, ``e_i = (y_i - B) / s_i``, is
modelled as a conditional autoregression on the instrument's pixel grid (Besag 1974, JRSS B 36, 192):

    e_i | e_-i ~ N(sum_h beta_h (e_{i+h} + e_{i-h}),  tau^2)

over the half-stencil ``h`` of lags within ``STENCIL_RADIUS`` pixels, so the precision of ``e`` is
``(I - B) / tau^2`` and that of ``y`` is ``Q = D^-1 (I - B) D^-1 / tau^2`` with ``D = diag(s)``
(a Gaussian Markov random field; 5 x 5 neighbourhoods approximate Gaussian fields of correlation
lengths of a few pixels closely, Rue & Tjelmeland 2002, Scand. J. Stat. 29, 31). ``beta`` and
``tau^2`` are the least-squares regression of every quiet pixel with a complete neighbourhood on its
neighbours' pair sums: Besag's pseudo-likelihood estimate (1975, The Statistician 24, 179), which
for a Gaussian CAR is exactly that regression. Bright plume pixels
(:func:`~attribution_assets.science.inversion.structured_error.quiet_observations`) are left out
of the fit, as the errors are what it describes. The field is used when the regression explains a
significant share of the variance (F test at ``SIGNIFICANCE``), and its coefficients are shrunk
where needed so that ``I - B`` is positive definite with a spectral floor of ``SPECTRAL_FLOOR``.
Pixels at the grid's edge keep the free-boundary rows of the field (their missing neighbours are
left out).

The fitted precision becomes the block's ``error_precision``; the likelihood then uses it in
place of ``diag(1 / s^2)`` (:mod:`~attribution_assets.science.inversion.problem`). The structured
error measure afterwards checks what the field leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse, stats

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion.structured_error import quiet_observations

STENCIL_RADIUS = 2
"""Largest lag (pixels, per axis) of the conditional autoregression: a 5 x 5 neighbourhood."""
MIN_OBSERVATIONS = 300
"""Fewest quiet pixels with a complete quiet neighbourhood for which a block's field is fitted."""
MAX_PIXELS = 16_384
"""Largest block (observations) that gets a field: the likelihood then costs 12 shifted products per
pixel of the block's grid window, and on the bundled 240 x 240 GHGSat scenes (57,000 pixels) that
doubled SMC's sampling time (34 to 66 s for the Permian sample event) and took the demo past 3 min.
Larger blocks keep independent errors and the structured-error tempering."""
SIGNIFICANCE = 1e-3
"""p-value of the F test (regression on the neighbours against none) below which the field is used."""
SPECTRAL_FLOOR = 0.05
"""Smallest eigenvalue of ``I - B`` allowed (over a 64 x 64 grid of wavenumbers)."""


def half_stencil(radius: int = STENCIL_RADIUS) -> np.ndarray:
    """The lags ``h`` (K, 2) (rows, columns) of one side of the symmetric neighbourhood: each pair
    ``+h, -h`` once (12 for radius 2)."""
    lags = [(dr, dc) for dr in range(0, radius + 1) for dc in range(-radius, radius + 1)
            if dr > 0 or dc > 0]
    return np.array(lags, int)


@dataclass(frozen=True)
class CorrelatedErrorFit:
    """The error field fitted to one block: coefficients ``beta`` (K,) of the lags ``lags`` (K, 2),
    the conditional variance ``tau2`` and the marginal variance ``variance`` of the normalised
    errors (1 for independent errors of the reported sd), over ``n`` pixels, with the F test's
    ``p_value``; ``used`` says whether the block gets the field."""

    instrument: str
    lags: np.ndarray
    beta: np.ndarray
    tau2: float
    variance: float
    n: int
    p_value: float
    used: bool

    def describe(self) -> str:
        """One line for the log: the variance the neighbours explain and whether the field is used."""
        verdict = "used in the likelihood" if self.used else "not significant, errors kept independent"
        return (f"{self.instrument}: correlated error, normalised variance {self.variance:.2f}, "
                f"{self.tau2:.2f} given the neighbours (p = {self.p_value:.1e}, {self.n} pixels); "
                f"{verdict}")


def _lookup(grid_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Table (rows + 2R, cols + 2R) of observation numbers by grid position (-1: none), padded by
    the stencil radius, and the padded positions (n, 2) of the observations."""
    pos = np.asarray(grid_index, int) - np.asarray(grid_index, int).min(axis=0) + STENCIL_RADIUS
    table = np.full(tuple(pos.max(axis=0) + STENCIL_RADIUS + 1), -1, int)
    table[pos[:, 0], pos[:, 1]] = np.arange(pos.shape[0])
    return table, pos


def _neighbours(table: np.ndarray, pos: np.ndarray, lags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observation numbers (n, K) at ``+h`` and at ``-h`` of every observation (-1: none)."""
    plus = table[pos[:, None, 0] + lags[None, :, 0], pos[:, None, 1] + lags[None, :, 1]]
    minus = table[pos[:, None, 0] - lags[None, :, 0], pos[:, None, 1] - lags[None, :, 1]]
    return plus, minus


def _spectral_minimum(beta: np.ndarray, lags: np.ndarray) -> float:
    """Smallest ``1 - 2 sum_h beta_h cos(k . h)`` over a 64 x 64 grid of wavenumbers ``k``."""
    k = 2.0 * np.pi * np.arange(64) / 64
    phase = k[:, None, None] * lags[None, None, :, 0] + k[None, :, None] * lags[None, None, :, 1]
    return float(np.min(1.0 - 2.0 * np.sum(beta * np.cos(phase), axis=-1)))


def fit_correlated_error(block: ObservationBlock) -> CorrelatedErrorFit | None:
    """The conditional autoregression of the block's normalised errors (module docstring); None when
    the block has no grid positions, more than ``MAX_PIXELS`` observations or fewer than
    ``MIN_OBSERVATIONS`` usable pixels."""
    if block.grid_index is None or block.size > MAX_PIXELS:
        return None
    lags = half_stencil()
    table, pos = _lookup(block.grid_index)
    plus, minus = _neighbours(table, pos, lags)
    quiet = quiet_observations(block)
    e = (np.asarray(block.y, float) - np.median(block.y)) / np.asarray(block.sigma, float)
    e = e - e[quiet].mean()
    complete = quiet & np.all(plus >= 0, axis=1) & np.all(minus >= 0, axis=1)
    complete &= np.all(quiet[plus], axis=1) & np.all(quiet[minus], axis=1)
    m = int(complete.sum())
    if m < MIN_OBSERVATIONS:
        return None
    features = e[plus[complete]] + e[minus[complete]]
    target = e[complete]
    beta, *_ = np.linalg.lstsq(features, target, rcond=None)
    ss0, ss1 = float(target @ target), float(np.sum((target - features @ beta) ** 2))
    k = lags.shape[0]
    f_stat = ((ss0 - ss1) / k) / (ss1 / (m - k))
    p_value = float(stats.f.sf(f_stat, k, m - k))
    lowest = _spectral_minimum(beta, lags)
    if lowest < SPECTRAL_FLOOR:
        beta = beta * (1.0 - SPECTRAL_FLOOR) / (1.0 - lowest)
    tau2 = float(np.mean((target - features @ beta) ** 2))
    return CorrelatedErrorFit(block.instrument, lags, beta, tau2, float(np.mean(target**2)), m, p_value,
                              p_value < SIGNIFICANCE)


def error_precision(block: ObservationBlock, fit: CorrelatedErrorFit) -> sparse.csr_matrix:
    """The precision ``Q = D^-1 (I - B) D^-1 / tau^2`` (n, n) of the block's errors, in block units^-2
    (module docstring); pairs of which one pixel is missing are left out."""
    table, pos = _lookup(block.grid_index)
    plus, _ = _neighbours(table, pos, fit.lags)
    s = np.asarray(block.sigma, float)
    rows, cols = np.nonzero(plus >= 0)
    i, j = rows, plus[rows, cols]
    coupling = -fit.beta[cols] / (fit.tau2 * s[i] * s[j])
    n = block.size
    off = sparse.coo_matrix((coupling, (i, j)), shape=(n, n))
    return (sparse.diags(1.0 / (fit.tau2 * s**2)) + off + off.T).tocsr()


def model_correlated_errors(
    blocks: Sequence[ObservationBlock],
) -> tuple[list[ObservationBlock], list[CorrelatedErrorFit | None]]:
    """Every block with the precision of its fitted error field as ``error_precision`` where the fit
    is used, and, per block, its fit or None (:func:`fit_correlated_error`)."""
    out, fits = [], []
    for block in blocks:
        fit = fit_correlated_error(block)
        fits.append(fit)
        out.append(replace(block, error_precision=error_precision(block, fit)) if fit and fit.used else block)
    return out, fits
