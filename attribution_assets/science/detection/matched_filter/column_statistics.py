"""Background statistics of the CH4 matched filter, per cross-track detector column.

Statistics are per detector column (one detector element), as in the JPL EMIT processing (Thompson et
al. 2015, AMT 8 4383-4397), because each detector element has its own spectral response and noise.
When a column has fewer usable pixels than ``min_pixels_per_band * n_bands`` (a small AOI, clouds,
fill), neighbouring columns are pooled left to right into contiguous groups until each group has
enough; a trailing group that is still short joins its left neighbour. A pooled group has one mean and
one covariance (between-column spread included: Chan et al. 1979's parallel update). If the whole
scene has too few usable pixels, there is no group.

Moments are float64 (the scatter of bright, highly correlated spectra loses its small eigenvalues in
float32); per-column products are batched over pieces of columns (:mod:`.columns`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from attribution_assets.science.detection.matched_filter.columns import (
    GEMM_LINES,
    WORKERS,
    column_block,
    run_chunks,
)

VARIANCE_FLOOR = 1e-30
"""Smallest band variance of a correlation matrix's diagonal scale, (uW cm-2 sr-1 nm-1)^2."""


def column_groups(counts: np.ndarray, min_pixels: int) -> np.ndarray:
    """Contiguous column groups holding at least ``min_pixels`` usable pixels each.

    Walks columns left to right, closing a group once it holds ``min_pixels``; a short trailing group
    joins its left neighbour. Returns ``(n_columns,)`` group ids ``0..G-1``, all -1 when the scene holds
    fewer than ``min_pixels`` usable pixels.
    """
    counts = np.asarray(counts, dtype=np.int64)
    group = np.full(counts.size, -1, dtype=np.int64)
    if counts.sum() < max(min_pixels, 1):
        return group
    gid, acc = 0, 0
    for col, n in enumerate(counts.tolist()):  # loop over columns (scalars), not pixels
        group[col] = gid
        acc += n
        if acc >= min_pixels:
            gid, acc = gid + 1, 0
    group[group == gid] = gid - 1 if np.any(group == gid) else gid
    return group


@dataclass
class ColumnMoments:
    """Per-column pixel count ``(X,)``, mean ``(X, B)`` and centred scatter matrix ``(X, B, B)`` (float64).

    A running accumulator: :meth:`downdate` removes pixels from it in place.
    """

    count: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray

    def downdate(self, xw: np.ndarray, removed: np.ndarray, cols: np.ndarray) -> None:
        """Remove, in place, the ``removed`` pixels of columns ``cols`` of ``xw`` from the moments.

        Chan et al. (1979)'s pairwise update run backwards: with ``S`` the column's pixels, ``R`` the
        removed ones and ``T = S - R``, ``M2_T = M2_S - M2_R - n_T n_R / n_S (m_T - m_R)(m_T - m_R)^T``
        and ``m_T = (n_S m_S - n_R m_R) / n_T`` (float64; the removed pixels are a plume's, a small part
        of a column, so the subtraction loses no precision that matters). A plume pass then costs in
        proportion to the plume instead of re-reading every pixel of its columns.
        """
        for col in cols.tolist():  # loop over columns (scalars), each a few small products
            rows = np.flatnonzero(removed[:, col])
            if rows.size == 0:
                continue
            x = np.asarray(xw[rows, col, :], dtype=np.float64)
            n_s, n_r = self.count[col], float(rows.size)
            n_t = n_s - n_r
            if n_t < 1.0:
                self.count[col], self.mean[col], self.scatter[col] = 0.0, 0.0, 0.0
                continue
            m_r = x.mean(axis=0)
            x -= m_r
            m_t = (n_s * self.mean[col] - n_r * m_r) / n_t
            d = m_t - m_r
            self.scatter[col] -= x.T @ x + (n_t * n_r / n_s) * np.outer(d, d)
            self.count[col], self.mean[col] = n_t, m_t


def column_moments(xw: np.ndarray, use: np.ndarray, cols: np.ndarray, chunk: int) -> ColumnMoments:
    """Moments of the ``use`` pixels of columns ``cols`` of ``xw (downtrack, crosstrack, band)``.

    ``chunk`` columns are processed per batched step.
    """
    n_band = xw.shape[2]
    count = use[:, cols].sum(axis=0).astype(np.float64)
    mean = np.zeros((cols.size, n_band))
    scatter = np.zeros((cols.size, n_band, n_band))

    def work(offset: int, cc: np.ndarray) -> None:
        out = slice(offset, offset + cc.size)
        x = column_block(xw, cc, np.float64)
        w = use[:, cc].T
        partial = not w.all()
        if partial:
            x[~w] = 0.0
        m = x.sum(axis=1) / np.maximum(count[out], 1.0)[:, None]
        x -= m[:, None, :]
        if partial:
            x[~w] = 0.0
        mean[out] = m
        for d0 in range(0, x.shape[1], GEMM_LINES):
            xd = x[:, d0 : d0 + GEMM_LINES]
            scatter[out] += np.matmul(xd.transpose(0, 2, 1), xd)

    run_chunks(work, cols, chunk)
    return ColumnMoments(count, mean, scatter)


def pool_groups(
    moments: ColumnMoments, group: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count ``(G,)``, mean ``(G, B)`` and scatter ``(G, B, B)`` of contiguous column groups.

    Pools with the parallel (Chan et al. 1979) mean/scatter update. The returned arrays are new,
    except the scatter of one-column groups, which is ``moments.scatter`` itself (read it only).
    """
    count, mean, scatter = moments.count, moments.mean, moments.scatter
    if np.array_equal(group, np.arange(group.size)):
        return count.copy(), mean.copy(), scatter
    starts = np.flatnonzero(np.diff(group, prepend=-1))
    n_g = np.add.reduceat(count, starts)
    mean_g = np.add.reduceat(count[:, None] * mean, starts) / n_g[:, None]
    dev = np.where(count[:, None] > 0, mean - mean_g[group], 0.0)
    between = count[:, None, None] * dev[:, :, None] * dev[:, None, :]
    return n_g, mean_g, np.add.reduceat(scatter + between, starts)


def correlation(scatter_g: np.ndarray, count_g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal scale ``sqrt(diag S)`` ``(G, B)`` and the sample correlation matrix ``(G, B, B)`` per
    group, with ``S = scatter / (count - 1)`` the sample covariance."""
    cov = scatter_g / (count_g - 1.0)[:, None, None]
    var = np.maximum(np.diagonal(cov, axis1=1, axis2=2), VARIANCE_FLOOR)
    scale = np.sqrt(var)
    return scale, cov / (scale[:, :, None] * scale[:, None, :])


@dataclass(frozen=True)
class CorrelationEigen:
    """Per group: diagonal scale ``sqrt(diag S)`` ``(G, B)`` and the eigenvalues ``(G, B)`` (clipped at
    0) and eigenvectors ``(G, B, B)`` (columns) of the sample correlation matrix."""

    scale: np.ndarray
    eigval: np.ndarray
    eigvec: np.ndarray


def correlation_eigen(scatter_g: np.ndarray, count_g: np.ndarray) -> CorrelationEigen:
    """Eigenbasis of the sample correlation matrix of every group (:func:`correlation`)."""
    scale, corr = correlation(scatter_g, count_g)
    # scipy's batched eigh: numpy's stacked eigh can be >2x slower for small matrices when OpenBLAS
    # threads compete with other processes.
    eigval = np.empty(corr.shape[:2])
    eigvec = np.empty_like(corr)

    def work(_offset: int, gg: np.ndarray) -> None:
        eigval[gg], eigvec[gg] = linalg.eigh(corr[gg], driver="evd")

    run_chunks(work, np.arange(corr.shape[0]), max(1, -(-corr.shape[0] // WORKERS)))
    return CorrelationEigen(scale, np.clip(eigval, 0.0, None), eigvec)
