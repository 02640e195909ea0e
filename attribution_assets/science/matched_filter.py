"""Per-column CH4 matched filter for pushbroom imaging spectrometers (EMIT).

The classic matched filter (Manolakis et al. 2014, IEEE Signal Processing Magazine 31(1) 24-33;
Thompson et al. 2015, AMT 8 4383-4397, and the JPL EMIT GHG code; Foote et al. 2020, IEEE TGRS 58(9)
6480-6492, "mag1c") estimates a CH4 path enhancement ``alpha`` (ppm·m) for every pixel ``x`` as

    alpha = (x - mu)^T C^-1 t / (t^T C^-1 t),        sd = 1 / sqrt(t^T C^-1 t),

with ``mu`` and ``C`` the mean radiance and covariance of the background and ``t = k * mu`` the target
signature (``k`` the band unit absorption ``d ln L / d c`` in 1/(ppm·m), negative where CH4 absorbs, so
an excess of CH4 gives a positive ``alpha``).

Conventions of this implementation:

* Statistics per cross-track detector column (one detector element), as in the JPL EMIT processing,
  because each detector element has its own spectral response and noise. When a column has fewer usable
  pixels than ``min_pixels_per_band * n_bands`` (a small AOI, clouds, fill), neighbouring columns are
  pooled left to right into contiguous groups until each group has enough; a trailing group that is
  still short joins its left neighbour. A pooled group has one mean and one covariance (between-column
  spread included). If the whole scene has too few usable pixels, every pixel is invalid.
* Covariance shrinkage ``C = (1 - a) S + a diag(S)``, with ``a`` chosen per group from a grid by the
  closed-form Gaussian leave-one-out log-likelihood of Theiler (2012, Proc. SPIE 8391, "The incredible
  shrinking covariance estimator"), evaluated in the eigenbasis of the sample correlation matrix so that
  every grid value costs O(n_pixels * n_bands); the likelihood sum is estimated on a regular subsample
  of at most 256 downtrack lines.
* Screening (pixels excluded from statistics and reported invalid): non-finite or fill (``fill_value``)
  radiance in any window band; saturation (any window band above ``saturation_threshold``, default 6.0
  uW cm-2 sr-1 nm-1 as mag1c); flares (radiance of the band nearest 2389 nm above ``flare_threshold``,
  default 1.5 uW cm-2 sr-1 nm-1, JPL EMIT GHG); optional clouds (mean radiance over the 450-1250 nm
  continuum above ``cloud_threshold`` uW cm-2 sr-1 nm-1); an optional caller ``exclude`` mask.
* Second pass: pixels whose first-pass enhancement exceeds ``plume_sigma`` times their uncertainty
  (dilated by ``plume_dilation_px``) are removed from the statistics, which are re-estimated, so that a
  strong plume does not bias ``mu`` and ``C`` (motivation: SRON HyperGas issue #60).
* ``albedo_correction``: mag1c's per-pixel scaling of the target by ``R = x^T mu / mu^T mu``, i.e.
  ``alpha = (x - mu)^T C^-1 t / (R t^T C^-1 t)`` and ``sd = 1 / (R sqrt(t^T C^-1 t))``.

Everything is vectorised: per-column moments and quadratic forms are batched matrix products over
chunks of columns; no Python loop runs over pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from scipy import linalg, ndimage

from attribution_assets.science.absorption import band_unit_absorption

FILL_VALUE = -9999.0
CH4_WINDOW_NM = (2137.0, 2493.0)
FLARE_WAVELENGTH_NM = 2389.0
CLOUD_CONTINUUM_NM = (450.0, 1250.0)
SHRINKAGE_GRID = tuple(float(a) for a in np.logspace(-6.0, 0.0, 13))
_VARIANCE_FLOOR = 1e-30
_LOO_MAX_LINES = 256


@dataclass(frozen=True)
class MatchedFilterResult:
    """Matched-filter output on the raw (downtrack, crosstrack) geometry.

    Attributes:
        enhancement_ppm_m: CH4 path enhancement, ppm·m, float32, NaN where invalid.
        sd_ppm_m: per-pixel 1-sigma uncertainty, ppm·m, float32, NaN where invalid.
        valid: True where the pixel passed screening and its column group had statistics.
        column_group: (crosstrack,) index of the statistics group of each column, -1 if none.
        shrinkage: (n_groups,) shrinkage weight ``a`` chosen per group (last pass).
        plume_excluded: pixels removed from the statistics on the second pass.
        band_index: indices of the bands used (the CH4 window).
    """

    enhancement_ppm_m: np.ndarray
    sd_ppm_m: np.ndarray
    valid: np.ndarray
    column_group: np.ndarray
    shrinkage: np.ndarray
    plume_excluded: np.ndarray
    band_index: np.ndarray


@dataclass(frozen=True)
class _GroupStats:
    """Per-group filter quantities: counts, means, whitening, eigenbasis, chosen shrinkage."""

    count: np.ndarray  # (G,)
    mean: np.ndarray  # (G, B) radiance
    scale: np.ndarray  # (G, B) sqrt(diag S)
    eigval: np.ndarray  # (G, B) eigenvalues of the sample correlation matrix
    eigvec: np.ndarray  # (G, B, B)


def window_bands(wavelength_nm: np.ndarray, window_nm: tuple[float, float]) -> np.ndarray:
    """Indices of the bands whose centre lies inside ``window_nm`` (inclusive), nm."""
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    return np.flatnonzero((wl >= window_nm[0]) & (wl <= window_nm[1]))


def screen_pixels(
    radiance: np.ndarray,
    wavelength_nm: np.ndarray,
    band_index: np.ndarray,
    *,
    fill_value: float = FILL_VALUE,
    saturation_threshold: float | None = 6.0,
    flare_threshold: float | None = 1.5,
    cloud_threshold: float | None = None,
) -> np.ndarray:
    """Usable pixels ``(downtrack, crosstrack)``: finite, not fill, not saturated, no flare, no cloud.

    Thresholds are radiances in uW cm-2 sr-1 nm-1 (EMIT L1B units); ``None`` disables a test.
    """
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    xw = _take_bands(radiance, band_index)
    usable = np.isfinite(xw).all(axis=-1) & ~(xw == fill_value).any(axis=-1)
    if saturation_threshold is not None:
        usable &= ~(xw > saturation_threshold).any(axis=-1)
    i_flare = int(np.argmin(np.abs(wl - FLARE_WAVELENGTH_NM)))
    if flare_threshold is not None and abs(wl[i_flare] - FLARE_WAVELENGTH_NM) <= 10.0:
        usable &= ~(radiance[..., i_flare] > flare_threshold)
    cloud_bands = window_bands(wl, CLOUD_CONTINUUM_NM)
    if cloud_threshold is not None and cloud_bands.size:
        continuum = _take_bands(radiance, cloud_bands).mean(axis=-1, dtype=np.float64)
        usable &= ~(continuum > cloud_threshold)
    return usable


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


def matched_filter(
    radiance: np.ndarray,
    wavelength_nm: np.ndarray,
    fwhm_nm: np.ndarray,
    k_hi: tuple[np.ndarray, np.ndarray, np.ndarray],
    window_nm: tuple[float, float] = CH4_WINDOW_NM,
    *,
    albedo_correction: bool = True,
    second_pass: bool = True,
    plume_sigma: float = 3.0,
    plume_dilation_px: int = 1,
    shrinkage_grid: tuple[float, ...] = SHRINKAGE_GRID,
    min_pixels_per_band: float = 2.0,
    fill_value: float = FILL_VALUE,
    saturation_threshold: float | None = 6.0,
    flare_threshold: float | None = 1.5,
    cloud_threshold: float | None = None,
    exclude: np.ndarray | None = None,
    column_chunk: int = 64,
) -> MatchedFilterResult:
    """CH4 matched filter on raw pushbroom geometry (see the module docstring for the method).

    Args:
        radiance: ``(downtrack, crosstrack, band)`` radiance, uW cm-2 sr-1 nm-1 (float32 or float64).
        wavelength_nm: ``(band,)`` band centres, nm. fwhm_nm: ``(band,)`` band FWHM, nm.
        k_hi: CH4 radiance LUT ``(wavelength_nm, radiance (n_conc, n_wl), concentration_ppm_m)`` as
            returned by ``readers.reference.load_ch4_unit_absorption``.
        window_nm: spectral window used by the filter, nm (JPL: 2137-2493).
        albedo_correction: scale the target by mag1c's per-pixel ``R = x^T mu / mu^T mu``.
        second_pass: re-estimate statistics without pixels above ``plume_sigma`` x sd (dilated by
            ``plume_dilation_px`` pixels).
        shrinkage_grid: candidate shrinkage weights ``a`` in [0, 1] for the leave-one-out choice.
        min_pixels_per_band: a statistics group needs ``ceil(min_pixels_per_band * n_bands)`` pixels.
        fill_value, saturation_threshold, flare_threshold, cloud_threshold: screening, see
            :func:`screen_pixels`. exclude: optional ``(downtrack, crosstrack)`` bool, True = drop.
        column_chunk: columns processed per batched step (memory ~ chunk x downtrack x bands x 8 B x 4).

    Returns:
        :class:`MatchedFilterResult` with positive ppm·m for a CH4 excess.
    """
    radiance = np.asarray(radiance)
    if radiance.ndim != 3 or radiance.shape[-1] != np.size(wavelength_nm):
        raise ValueError(f"radiance must be (downtrack, crosstrack, band={np.size(wavelength_nm)}), "
                         f"got {radiance.shape}")
    band_index = window_bands(wavelength_nm, window_nm)
    k_band = band_unit_absorption(*k_hi, np.asarray(wavelength_nm)[band_index],
                                  np.asarray(fwhm_nm)[band_index])
    if band_index.size < 2 or not np.any(k_band < 0):
        raise ValueError(f"no CH4-absorbing bands inside window {window_nm} nm")
    usable = screen_pixels(radiance, wavelength_nm, band_index, fill_value=fill_value,
                           saturation_threshold=saturation_threshold, flare_threshold=flare_threshold,
                           cloud_threshold=cloud_threshold)
    if exclude is not None:
        usable &= ~np.asarray(exclude, dtype=bool)
    xw = _take_bands(radiance, band_index)
    min_pixels = int(np.ceil(min_pixels_per_band * band_index.size))
    grid = np.asarray(shrinkage_grid, dtype=np.float64)
    opts = dict(k_band=k_band, min_pixels=min_pixels, grid=grid, albedo=albedo_correction, chunk=column_chunk)
    alpha, sd, valid, group, shrink = _single_pass(xw, usable, usable, **opts)
    excluded = np.zeros_like(usable)
    if second_pass:
        excluded = valid & (alpha > plume_sigma * sd)
        if plume_dilation_px > 0 and excluded.any():
            excluded = ndimage.binary_dilation(excluded, iterations=plume_dilation_px) & usable
        if excluded.any():
            alpha, sd, valid, group, shrink = _single_pass(xw, usable & ~excluded, usable, **opts)
    return MatchedFilterResult(alpha, sd, valid, group, shrink, excluded, band_index)


def _take_bands(radiance: np.ndarray, band_index: np.ndarray) -> np.ndarray:
    """Window bands as a view when contiguous, else a copy."""
    if band_index.size and np.all(np.diff(band_index) == 1):
        return radiance[..., band_index[0] : band_index[-1] + 1]
    return radiance[..., band_index]


def _column_block(xw: np.ndarray, c0: int, c1: int) -> np.ndarray:
    """Columns ``c0:c1`` as float64 ``(column, downtrack, band)``."""
    return np.moveaxis(xw[:, c0:c1, :], 1, 0).astype(np.float64)


def _column_moments(xw: np.ndarray, use: np.ndarray, chunk: int) -> tuple[np.ndarray, ...]:
    """Per-column count, mean ``(X, B)`` and centred scatter matrix ``(X, B, B)`` of used pixels."""
    n_col, n_band = xw.shape[1], xw.shape[2]
    count = use.sum(axis=0).astype(np.float64)
    mean = np.zeros((n_col, n_band))
    scatter = np.zeros((n_col, n_band, n_band))
    for c0 in range(0, n_col, chunk):
        c1 = min(c0 + chunk, n_col)
        w = use[:, c0:c1].T[:, :, None]
        x = np.where(w, _column_block(xw, c0, c1), 0.0)
        m = x.sum(axis=1) / np.maximum(count[c0:c1], 1.0)[:, None]
        xc = np.where(w, x - m[:, None, :], 0.0)
        mean[c0:c1] = m
        scatter[c0:c1] = np.matmul(xc.transpose(0, 2, 1), xc)
    return count, mean, scatter


def _pool_groups(count, mean, scatter, group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool contiguous column groups with the parallel (Chan et al. 1979) mean/scatter update."""
    starts = np.flatnonzero(np.diff(group, prepend=-1))
    n_g = np.add.reduceat(count, starts)
    mean_g = np.add.reduceat(count[:, None] * mean, starts) / n_g[:, None]
    dev = np.where(count[:, None] > 0, mean - mean_g[group], 0.0)
    between = count[:, None, None] * dev[:, :, None] * dev[:, None, :]
    return n_g, mean_g, np.add.reduceat(scatter + between, starts)


def _group_stats(count_g, mean_g, scatter_g) -> _GroupStats:
    """Sample covariance per group, its diagonal scale and the eigenbasis of its correlation matrix."""
    cov = scatter_g / (count_g - 1.0)[:, None, None]
    var = np.maximum(np.diagonal(cov, axis1=1, axis2=2), _VARIANCE_FLOOR)
    scale = np.sqrt(var)
    corr = cov / (scale[:, :, None] * scale[:, None, :])
    # scipy's batched eigh: numpy's stacked eigh can be >10x slower for small matrices when OpenBLAS
    # threads compete with other processes.
    eigval, eigvec = linalg.eigh(corr, driver="evd")
    return _GroupStats(count_g, mean_g, scale, np.clip(eigval, 0.0, None), eigvec)


def _whitened(x: np.ndarray, stats: _GroupStats, g: np.ndarray) -> np.ndarray:
    """Pixels ``(c, D, B)`` of columns in groups ``g`` in the whitened eigen-coordinates of their group."""
    proj = stats.eigvec[g] / stats.scale[g][:, :, None]  # (c, B, B): diag(1/scale) V
    offset = np.einsum("cb,cbe->ce", stats.mean[g], proj)
    z = np.einsum("cdb,cbe->cde", x, proj)  # einsum: immune to BLAS thread contention on tiny GEMMs
    z -= offset[:, None, :]
    return z


def loo_terms(z2: np.ndarray, d: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Per-pixel leave-one-out terms ``log(1 - gamma r) + r / (1 - gamma r)`` (``inf`` if undefined).

    Args:
        z2: ``(..., n, B)`` squared whitened eigen-coordinates of the pixels.
        d: ``(..., B, A)`` eigenvalues of the shrunk correlation matrix for every grid value.
        gamma: ``(..., A)`` rank-one downdate weight ``(1 - a) / (n - 1)``.
    """
    r = np.einsum("...nb,...ba->...na", z2, 1.0 / d)
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
    Returns ``(len(grid),)`` log-likelihoods (nats).
    """
    x = np.asarray(x, dtype=np.float64)
    n, n_band = x.shape
    grid = np.asarray(grid, dtype=np.float64)
    xc = x - x.mean(axis=0)
    scale = np.sqrt(np.maximum((xc**2).sum(axis=0) / (n - 1), _VARIANCE_FLOOR))
    eigval, eigvec = linalg.eigh((xc.T @ xc) / (n - 1) / np.outer(scale, scale))
    d = np.maximum((1.0 - grid)[None, :] * np.clip(eigval, 0, None)[:, None] + grid[None, :], 1e-12)
    z2 = ((xc / scale) @ eigvec) ** 2
    terms = loo_terms(z2, d, (1.0 - grid) / (n - 1)).sum(axis=0)
    log_det = np.log(d).sum(axis=0) + 2.0 * np.log(scale).sum()
    return -0.5 * (n * (n_band * np.log(2 * np.pi) + log_det) + terms)


def _loo_shrinkage(xw, use, group, stats: _GroupStats, grid: np.ndarray, chunk: int) -> np.ndarray:
    """Shrinkage weight per group maximising :func:`loo_log_likelihood` (batched over columns).

    The sum of leave-one-out terms is estimated from every ``stride``-th downtrack line (at most
    ``_LOO_MAX_LINES`` lines), scaled by the used-pixel count ratio; the covariance itself uses all pixels.
    """
    n_down, n_col = xw.shape[:2]
    stride = max(1, int(np.ceil(n_down / _LOO_MAX_LINES)))
    lines = slice(None, None, stride)
    xw, use = xw[lines], use[lines]
    d = (1.0 - grid)[None, None, :] * stats.eigval[:, :, None] + grid[None, None, :]  # (G, B, A)
    d = np.maximum(d, 1e-12)
    gamma = (1.0 - grid)[None, :] / (stats.count - 1.0)[:, None]  # (G, A)
    col_terms = np.zeros((n_col, grid.size))
    for c0 in range(0, n_col, chunk):
        c1 = min(c0 + chunk, n_col)
        g = group[c0:c1]
        term = loo_terms(_whitened(_column_block(xw, c0, c1), stats, g) ** 2, d[g], gamma[g])
        col_terms[c0:c1] = np.where(use[:, c0:c1].T[:, :, None], term, 0.0).sum(axis=1)
    starts = np.flatnonzero(np.diff(group, prepend=-1))
    n_sub = np.add.reduceat(use.sum(axis=0).astype(np.float64), starts)
    terms = np.add.reduceat(col_terms, starts) * (stats.count / np.maximum(n_sub, 1.0))[:, None]
    loglik = -0.5 * (stats.count[:, None] * np.log(d).sum(axis=1) + terms)
    return grid[np.argmax(np.where(np.isfinite(loglik), loglik, -np.inf), axis=1)]


def _filter_vectors(stats: _GroupStats, k_band: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``q = C^-1 t`` ``(G, B)`` and ``t^T C^-1 t`` ``(G,)`` for the shrunk covariance of every group."""
    t = k_band[None, :] * stats.mean
    u = np.einsum("gbe,gb->ge", stats.eigvec, t / stats.scale)
    d = np.maximum((1.0 - a)[:, None] * stats.eigval + a[:, None], 1e-12)
    q = np.einsum("gbe,ge->gb", stats.eigvec, u / d) / stats.scale
    return q, np.einsum("gb,gb->g", t, q)


def _apply_filter(xw, out_mask, group, stats, q, den, albedo: bool, chunk: int):
    """Per-pixel enhancement and uncertainty (ppm·m), float32, NaN outside ``out_mask``."""
    n_down, n_col = xw.shape[:2]
    alpha = np.full((n_down, n_col), np.nan, dtype=np.float32)
    sd = np.full((n_down, n_col), np.nan, dtype=np.float32)
    for c0 in range(0, n_col, chunk):
        c1 = min(c0 + chunk, n_col)
        g = group[c0:c1]
        x = _column_block(xw, c0, c1)
        mu = stats.mean[g]
        num = np.einsum("cdb,cb->cd", x - mu[:, None, :], q[g])
        ratio = np.einsum("cdb,cb->cd", x, mu) / np.einsum("cb,cb->c", mu, mu)[:, None] if albedo else 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            a_blk = num / (ratio * den[g][:, None])
            s_blk = 1.0 / (ratio * np.sqrt(den[g])[:, None]) * np.ones_like(num)
        ok = out_mask[:, c0:c1].T & np.isfinite(a_blk) & np.isfinite(s_blk) & (s_blk > 0)
        alpha[:, c0:c1] = np.where(ok, a_blk, np.nan).T
        sd[:, c0:c1] = np.where(ok, s_blk, np.nan).T
    return alpha, sd


def _single_pass(xw, stats_mask, out_mask, *, k_band, min_pixels, grid, albedo, chunk):
    """Statistics from ``stats_mask`` pixels, filter applied to ``out_mask`` pixels."""
    n_down, n_col = xw.shape[:2]
    count, mean, scatter = _column_moments(xw, stats_mask, chunk)
    group = column_groups(count.astype(np.int64), min_pixels)
    if np.all(group < 0):
        nan = np.full((n_down, n_col), np.nan, dtype=np.float32)
        return nan, nan.copy(), np.zeros((n_down, n_col), dtype=bool), group, np.zeros(0)
    stats = _group_stats(*_pool_groups(count, mean, scatter, group))
    a = _loo_shrinkage(xw, stats_mask, group, stats, grid, chunk)
    q, den = _filter_vectors(stats, k_band, a)
    alpha, sd = _apply_filter(xw, out_mask, group, stats, q, den, albedo, chunk)
    return alpha, sd, np.isfinite(alpha), group, a


def orthorectify(
    field: np.ndarray, glt_row: np.ndarray, glt_col: np.ndarray, fill: Any = np.nan
) -> np.ndarray:
    """Resample a raw-geometry field onto the ortho grid with a geographic lookup table.

    ``out[i, j] = field[glt_row[i, j], glt_col[i, j]]`` where both indices are >= 0, else ``fill``.
    ``field`` is ``(downtrack, crosstrack, ...)``; the GLT holds 0-based indices (EMIT V001 files store
    1-based indices with 0 = no data; readers convert them).
    """
    field = np.asarray(field)
    row = np.asarray(glt_row, dtype=np.int64)
    col = np.asarray(glt_col, dtype=np.int64)
    ok = (row >= 0) & (col >= 0)
    out = np.full(row.shape + field.shape[2:], fill, dtype=np.result_type(field, fill))
    out[ok] = field[row[ok], col[ok]]
    return out


_OUTPUT_ATTRS = {
    "ch4_enhancement_ppm_m": {"units": "ppm m", "long_name": "CH4 path enhancement (matched filter)"},
    "ch4_enhancement_sd_ppm_m": {"units": "ppm m", "long_name": "1-sigma uncertainty of the CH4 enhancement"},
    "valid": {"units": "1", "long_name": "pixel passed screening and has matched-filter statistics"},
}


def _method_string(options: dict[str, Any]) -> str:
    """Human-readable description of the matched-filter configuration."""
    window = options.get("window_nm", CH4_WINDOW_NM)
    return (
        "per-column CH4 matched filter (Thompson et al. 2015; Foote et al. 2020), Theiler (2012) LOO "
        f"shrinkage, window {window[0]:g}-{window[1]:g} nm, "
        f"albedo_correction={options.get('albedo_correction', True)}, "
        f"second_pass={options.get('second_pass', True)}"
    )


def emit_enhancement(
    ds: xr.Dataset, k_hi: tuple[np.ndarray, np.ndarray, np.ndarray], **options: Any
) -> xr.Dataset:
    """Matched-filter CH4 enhancement of an EMIT L1B reader dataset, orthorectified.

    Args:
        ds: reader carrier with ``radiance(downtrack, crosstrack, band)`` (uW cm-2 sr-1 nm-1), coords
            ``wavelength(band)``, ``fwhm(band)`` (nm), ``glt_row``/``glt_col(y, x)`` (0-based, -1 = none),
            ``y_lat(y)``, ``x_lon(x)`` and provenance attributes.
        k_hi: CH4 radiance LUT ``(wavelength_nm, radiance, concentration_ppm_m)``.
        **options: passed to :func:`matched_filter`.

    Returns:
        Dataset on ``(y, x)`` with ``ch4_enhancement_ppm_m``, ``ch4_enhancement_sd_ppm_m`` (float32, NaN
        where invalid), ``valid`` (bool) and coords ``lat(y)``, ``lon(x)``; the input attributes plus
        ``method``, ``matched_filter_n_column_groups`` and ``matched_filter_shrinkage_median``.
    """
    radiance = ds["radiance"].transpose("downtrack", "crosstrack", "band").values
    result = matched_filter(radiance, ds["wavelength"].values, ds["fwhm"].values, k_hi, **options)
    row = ds["glt_row"].transpose("y", "x").values
    col = ds["glt_col"].transpose("y", "x").values
    fields = {
        "ch4_enhancement_ppm_m": orthorectify(result.enhancement_ppm_m, row, col),
        "ch4_enhancement_sd_ppm_m": orthorectify(result.sd_ppm_m, row, col),
        "valid": orthorectify(result.valid, row, col, fill=False),
    }
    coords = {
        "lat": ("y", np.asarray(ds["y_lat"].values, dtype=np.float64),
                {"units": "degrees_north", "long_name": "latitude", "standard_name": "latitude"}),
        "lon": ("x", np.asarray(ds["x_lon"].values, dtype=np.float64),
                {"units": "degrees_east", "long_name": "longitude", "standard_name": "longitude"}),
    }
    attrs = dict(ds.attrs)
    attrs["method"] = _method_string(options)
    attrs["matched_filter_n_column_groups"] = int(result.shrinkage.size)
    attrs["matched_filter_shrinkage_median"] = (
        float(np.median(result.shrinkage)) if result.shrinkage.size else float("nan")
    )
    data_vars = {name: (("y", "x"), value, _OUTPUT_ATTRS[name]) for name, value in fields.items()}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
