"""Closed-form posterior of a linear-Gaussian inverse problem.

For observations ``y = K x + e`` with ``e ~ N(0, S_o)`` and prior ``x ~ N(x_a, S_a)`` the posterior
is Gaussian with

    S_hat = (K^T S_o^-1 K + S_a^-1)^-1
    x_hat = x_a + S_hat K^T S_o^-1 (y - K x_a)

(Rodgers 2000, *Inverse Methods for Atmospheric Sounding*, eqs. 4.7-4.9; the analytical form of the
Integrated Methane Inversion, Varon et al. 2022, GMD 15, 5787, eqs. 3-4).  With wind, stability
and source position fixed the plume model is linear in the emission rate and the backgrounds, so
this is the exact reference for the sampler in :mod:`attribution_assets.science.inversion`.

Independent Gaussian posteriors of the same state combine by adding precisions
(``P = sum_i P_i``, ``P x = sum_i P_i x_i``); when every posterior already contains the same prior,
that prior's precision is counted once (Tarantola 2005, *Inverse Problem Theory*, sec. 3.2).
Units are whatever the caller's ``y`` and ``x`` carry; nothing here converts units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import linalg


@dataclass(frozen=True)
class GaussianPosterior:
    """Gaussian state estimate: ``mean`` (p,) and ``cov`` (p, p) in the units of the state."""

    mean: np.ndarray
    cov: np.ndarray

    @property
    def sd(self) -> np.ndarray:
        """Marginal standard deviations (p,)."""
        return np.sqrt(np.diag(self.cov))

    @property
    def precision(self) -> np.ndarray:
        """Inverse covariance (p, p)."""
        return _spd_inverse(self.cov)


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix through its Cholesky factor."""
    factor = linalg.cho_factor(np.asarray(matrix, dtype=float), lower=True)
    inverse = linalg.cho_solve(factor, np.eye(matrix.shape[0]))
    return 0.5 * (inverse + inverse.T)


def _as_covariance(s: np.ndarray, size: int, name: str) -> np.ndarray:
    """Full covariance from a vector of variances (diagonal) or a full (size, size) matrix."""
    s = np.asarray(s, dtype=float)
    if s.ndim == 0:
        s = np.full(size, float(s))
    if s.ndim == 1:
        if s.shape != (size,):
            raise ValueError(f"{name}: expected {size} variances, got shape {s.shape}")
        if np.any(s <= 0):
            raise ValueError(f"{name}: variances must be positive")
        return np.diag(s)
    if s.shape != (size, size):
        raise ValueError(f"{name}: expected shape ({size}, {size}), got {s.shape}")
    return s


def _weighted_jacobian(jacobian: np.ndarray, s_o: np.ndarray) -> np.ndarray:
    """``S_o^-1 K`` for diagonal (1-D variances) or full ``S_o``."""
    if s_o.ndim == 1:
        return jacobian / s_o[:, None]
    return linalg.cho_solve(linalg.cho_factor(s_o, lower=True), jacobian)


def linear_gaussian_posterior(
    jacobian: np.ndarray,
    y: np.ndarray,
    x_a: np.ndarray,
    s_a: np.ndarray,
    s_o: np.ndarray,
) -> GaussianPosterior:
    """Posterior of ``x`` given ``y = K x + e``, ``e ~ N(0, S_o)``, ``x ~ N(x_a, S_a)``.

    ``jacobian`` K (n, p) in observation units per state unit; ``y`` (n,) observations;
    ``x_a`` (p,) prior mean; ``s_a`` prior covariance (p, p) or prior variances (p,);
    ``s_o`` observation-error covariance (n, n) or variances (n,) in observation units squared.
    """
    jacobian = np.atleast_2d(np.asarray(jacobian, dtype=float))
    n, p = jacobian.shape
    y = np.asarray(y, dtype=float).reshape(n)
    x_a = np.asarray(x_a, dtype=float).reshape(p)
    s_a = _as_covariance(s_a, p, "s_a")
    s_o = np.asarray(s_o, dtype=float)
    if s_o.ndim == 0:
        s_o = np.full(n, float(s_o))
    if s_o.ndim == 1 and s_o.shape != (n,):
        raise ValueError(f"s_o: expected {n} variances, got shape {s_o.shape}")
    if s_o.ndim == 2 and s_o.shape != (n, n):
        raise ValueError(f"s_o: expected shape ({n}, {n}), got {s_o.shape}")
    weighted = _weighted_jacobian(jacobian, s_o)  # S_o^-1 K
    precision = jacobian.T @ weighted + _spd_inverse(s_a)
    cov = _spd_inverse(precision)
    mean = x_a + cov @ (weighted.T @ (y - jacobian @ x_a))
    return GaussianPosterior(mean=mean, cov=cov)


def combine_gaussian_posteriors(
    posteriors: Sequence[GaussianPosterior],
    shared_prior: GaussianPosterior | None = None,
) -> GaussianPosterior:
    """Precision-weighted combination of independent Gaussian posteriors of the same state.

    ``P = sum_i P_i - (m - 1) P_a`` and ``P x = sum_i P_i x_i - (m - 1) P_a x_a`` for ``m``
    posteriors; pass ``shared_prior`` (``x_a``, ``S_a``) when every posterior was computed with that
    same prior so that it counts once, which makes the result equal to the joint posterior of all
    observations. Without ``shared_prior`` the inputs are treated as independent information.
    """
    if not posteriors:
        raise ValueError("need at least one posterior to combine")
    precisions = [post.precision for post in posteriors]
    precision = np.sum(precisions, axis=0)
    info = np.sum([p @ post.mean for p, post in zip(precisions, posteriors, strict=True)], axis=0)
    if shared_prior is not None:
        prior_precision = shared_prior.precision
        extra = len(posteriors) - 1
        precision = precision - extra * prior_precision
        info = info - extra * prior_precision @ shared_prior.mean
    cov = _spd_inverse(precision)
    return GaussianPosterior(mean=cov @ info, cov=cov)
