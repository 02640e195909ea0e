"""Covariance shrinkage of the CH4 matched filter, chosen by leave-one-out likelihood.

The background covariance is ``C = (1 - a) S + a diag(S)``, with ``a`` chosen per column group from a
grid by the closed-form Gaussian leave-one-out log-likelihood of Theiler (2012, Proc. SPIE 8391, "The
incredible shrinking covariance estimator"), evaluated in the eigenbasis of the sample correlation
matrix so that every grid value costs O(n_pixels * n_bands); the likelihood sum is estimated on a
regular subsample of at most :data:`LOO_MAX_LINES` downtrack lines.
"""

from __future__ import annotations

import numpy as np

from attribution_assets.science.detection.matched_filter.column_statistics import (
    CorrelationEigen,
    correlation_eigen,
)
from attribution_assets.science.detection.matched_filter.columns import GEMM_LINES, column_block, run_chunks

SHRINKAGE_GRID = tuple(float(a) for a in np.logspace(-6.0, 0.0, 13))
"""Candidate shrinkage weights ``a`` in [0, 1] (dimensionless)."""
LOO_MAX_LINES = 256
"""Most downtrack lines on which the leave-one-out likelihood sum is estimated."""


def shrunk_eigenvalues(eigval: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Eigenvalues ``(1 - a) lambda + a`` of the shrunk correlation matrix (floored at 1e-12; broadcasts)."""
    return np.maximum((1.0 - a) * eigval + a, 1e-12)


def loo_terms(z2: np.ndarray, d: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Per-pixel leave-one-out terms ``log(1 - gamma r) + r / (1 - gamma r)`` (``inf`` if undefined).

    Args:
        z2: ``(..., n, B)`` squared whitened eigen-coordinates of the pixels.
        d: ``(..., B, A)`` eigenvalues of the shrunk correlation matrix for every grid value.
        gamma: ``(..., A)`` rank-one downdate weight ``(1 - a) / (n - 1)``.
    """
    r = np.matmul(z2, 1.0 / d)
    u = 1.0 - gamma[..., None, :] * r
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(u > 0, np.log(np.maximum(u, 1e-300)) + r / u, np.inf)


def loo_log_likelihood(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian leave-one-out log-likelihood of shrinkage weights ``a`` for one group (Theiler 2012).

    ``x`` is ``(n, B)`` (centred here). With ``S`` the sample covariance (1/(n-1)), ``T = diag(S)``,
    ``G = (1-a) S + a T`` and ``r_k = x_k^T G^-1 x_k``, removing pixel k from ``S`` gives
    ``R_k = G - gamma x_k x_k^T``, ``gamma = (1-a)/(n-1)``; by Sherman-Morrison
    ``sum_k log N(x_k; 0, R_k) = -1/2 sum_k [B log 2 pi + log det G + log(1 - gamma r_k)
    + r_k / (1 - gamma r_k)]``. Mean and ``T`` are held at their full-sample values, as in Theiler.
    Returns ``(len(grid),)`` log-likelihoods (nats). :func:`loo_shrinkage` maximises the same sum
    (without its constant terms) for every column group of a scene.
    """
    x = np.asarray(x, dtype=np.float64)
    n, n_band = x.shape
    grid = np.asarray(grid, dtype=np.float64)
    xc = x - x.mean(axis=0)
    basis = correlation_eigen((xc.T @ xc)[None], np.array([float(n)]))
    scale, eigval, eigvec = basis.scale[0], basis.eigval[0], basis.eigvec[0]
    d = shrunk_eigenvalues(eigval[:, None], grid[None, :])
    z2 = ((xc / scale) @ eigvec) ** 2
    terms = loo_terms(z2, d, (1.0 - grid) / (n - 1)).sum(axis=0)
    log_det = np.log(d).sum(axis=0) + 2.0 * np.log(scale).sum()
    return -0.5 * (n * (n_band * np.log(2 * np.pi) + log_det) + terms)


def loo_shrinkage(
    xw: np.ndarray,
    use: np.ndarray,
    group: np.ndarray,
    count: np.ndarray,
    mean: np.ndarray,
    basis: CorrelationEigen,
    grid: np.ndarray,
    chunk: int,
) -> np.ndarray:
    """Shrinkage weight per column group maximising the leave-one-out log-likelihood.

    Args:
        xw: ``(downtrack, crosstrack, band)`` window radiance. use: ``(downtrack, crosstrack)`` pixels
            in the statistics. group: ``(crosstrack,)`` group of every column (``0..G-1``).
        count, mean, basis: pixel count ``(G,)``, mean radiance ``(G, B)`` and correlation eigenbasis
            of every group.
        grid: candidate weights ``(A,)``. chunk: columns per batched step.

    The sum of leave-one-out terms is estimated from every ``stride``-th downtrack line (at most
    :data:`LOO_MAX_LINES` lines), scaled by the used-pixel count ratio; the covariance uses all pixels.
    The pixels are projected once onto each group's eigenbasis; every grid value then costs
    O(n_pixels * n_bands). Returns ``(G,)`` weights from ``grid``.
    """
    n_down = xw.shape[0]
    stride = max(1, int(np.ceil(n_down / LOO_MAX_LINES)))
    xs, us = xw[::stride], use[::stride]
    d = shrunk_eigenvalues(basis.eigval[:, :, None], grid[None, None, :])
    gamma = (1.0 - grid)[None, :] / (count - 1.0)[:, None]  # (g, A)
    cols = np.flatnonzero(group >= 0)
    col_terms = np.zeros((cols.size, grid.size))
    n_sub = np.zeros(cols.size)

    def work(offset: int, cc: np.ndarray) -> None:
        out = slice(offset, offset + cc.size)
        s = group[cc]
        proj = basis.eigvec[s] / basis.scale[s][:, :, None]  # (c, B, B): diag(1/scale) V
        x = column_block(xs, cc, np.float64)
        x -= mean[s][:, None, :]
        z = np.concatenate(
            [np.matmul(x[:, d0 : d0 + GEMM_LINES], proj) for d0 in range(0, x.shape[1], GEMM_LINES)],
            axis=1,
        )
        term = loo_terms(z * z, d[s], gamma[s])
        w = us[:, cc].T
        col_terms[out] = np.where(w[:, :, None], term, 0.0).sum(axis=1)
        n_sub[out] = w.sum(axis=1)

    run_chunks(work, cols, chunk)
    terms = np.zeros((count.size, grid.size))
    np.add.at(terms, group[cols], col_terms)
    n_used = np.zeros(count.size)
    np.add.at(n_used, group[cols], n_sub)
    terms *= (count / np.maximum(n_used, 1.0))[:, None]
    loglik = -0.5 * (count[:, None] * np.log(d).sum(axis=1) + terms)
    return grid[np.argmax(np.where(np.isfinite(loglik), loglik, -np.inf), axis=1)]
