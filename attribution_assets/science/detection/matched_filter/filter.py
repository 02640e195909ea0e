"""The CH4 matched filter on raw pushbroom geometry: application, plume-exclusion passes, albedo correction.

For every pixel ``x`` (Manolakis et al. 2014, IEEE Signal Processing Magazine 31(1) 24-33; Thompson et
al. 2015, AMT 8 4383-4397; Foote et al. 2020, IEEE TGRS 58(9) 6480-6492, "mag1c")

    alpha = (x - mu)^T C^-1 t / (t^T C^-1 t),        sd = 1 / sqrt(t^T C^-1 t),

with ``mu`` and ``C`` the mean and shrunk covariance of the pixel's column group (:mod:`.column_statistics`,
:mod:`.shrinkage`) and ``t = k * mu`` the target signature.

* ``albedo_correction``: mag1c's per-pixel scaling of the target by ``R = x^T mu / mu^T mu``, i.e.
  ``alpha = (x - mu)^T C^-1 t / (R t^T C^-1 t)`` and ``sd = 1 / (R sqrt(t^T C^-1 t))``.
* Second pass: connected regions whose smoothed enhancement is significant (:func:`plume_pixels`,
  hysteresis from 4-sigma seeds down to 2.5 sigma, dilated by ``plume_dilation_px``) are removed from
  the statistics, which are re-estimated, so that a plume does not bias ``mu`` and ``C`` (motivation:
  SRON HyperGas issue #60); repeated while the excluded set grows (at most ``plume_passes``), because a
  plume along a detector column that fills much of it is suppressed at first and found a piece at a
  time. Only the column groups that lose pixels are refitted, from their moments downdated by the
  removed pixels (:meth:`.ColumnMoments.downdate`); isolated noise exceedances stay in.

The filter runs in float32 on radiance centred on its group mean; no Python loop runs over pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from attribution_assets.science.detection.matched_filter.column_statistics import (
    ColumnMoments,
    CorrelationEigen,
    column_groups,
    column_moments,
    correlation,
    correlation_eigen,
    pool_groups,
)
from attribution_assets.science.detection.matched_filter.columns import column_block, run_chunks, take_bands
from attribution_assets.science.detection.matched_filter.screening import (
    CH4_WINDOW_NM,
    FILL_VALUE,
    screen_pixels,
    window_bands,
)
from attribution_assets.science.detection.matched_filter.shrinkage import (
    SHRINKAGE_GRID,
    loo_shrinkage,
    shrunk_eigenvalues,
)
from attribution_assets.science.detection.plume_mask import (
    EIGHT_CONNECTED,
    kernel_radius,
    robust_spread,
    significance_map,
)
from attribution_assets.science.forward.absorption import band_unit_absorption


@dataclass(frozen=True)
class MatchedFilterOptions:
    """Settings of :func:`matched_filter` (and of the scene-level ``enhance_emit_scene``).

    Attributes:
        window_nm: spectral window used by the filter, nm (JPL: 2137-2493).
        albedo_correction: scale the target by mag1c's per-pixel ``R = x^T mu / mu^T mu``.
        second_pass: re-estimate statistics without the pixels of :func:`plume_pixels` (regions whose
            enhancement, smoothed with a ``plume_smoothing_px`` Gaussian (pixels), exceeds
            ``plume_grow_sigma`` times its uncertainty and holds ``plume_min_pixels`` pixels above
            ``plume_sigma``, dilated by ``plume_dilation_px`` pixels); only column groups that lose
            pixels are recomputed. Repeated up to ``plume_passes`` times while the excluded set grows: a
            plume that fills a large part of its columns is suppressed on the first pass and is found a
            piece at a time. A column is refitted when a pass would remove more than
            ``plume_refit_fraction`` of its usable pixels (a few pixels move its mean and covariance by
            less than their noise).
        shrinkage_grid: candidate shrinkage weights ``a`` in [0, 1] for the leave-one-out choice.
        min_pixels_per_band: a statistics group needs ``ceil(min_pixels_per_band * n_bands)`` pixels.
        fill_value, saturation_threshold, flare_threshold, cloud_threshold: screening radiances,
            uW cm-2 sr-1 nm-1 (:func:`.screening.screen_pixels`; ``None`` disables a test).
        column_chunk: columns processed per batched step (temporaries ~ chunk x downtrack x bands x 8 B;
            the default keeps them under 16 MB for a full EMIT scene, so the allocator reuses them).
    """

    window_nm: tuple[float, float] = CH4_WINDOW_NM
    albedo_correction: bool = True
    second_pass: bool = True
    plume_sigma: float = 4.0
    plume_grow_sigma: float = 2.5
    plume_smoothing_px: float = 1.5
    plume_min_pixels: int = 10
    plume_dilation_px: int = 1
    plume_passes: int = 6
    plume_refit_fraction: float = 0.01
    shrinkage_grid: tuple[float, ...] = SHRINKAGE_GRID
    min_pixels_per_band: float = 2.0
    fill_value: float = FILL_VALUE
    saturation_threshold: float | None = 6.0
    flare_threshold: float | None = 1.5
    cloud_threshold: float | None = None
    column_chunk: int = 32

    def describe(self) -> str:
        """Human-readable description of the configuration (the ``method`` attribute of the output)."""
        window = self.window_nm
        return (
            "per-column CH4 matched filter (Thompson et al. 2015; Foote et al. 2020), Theiler (2012) LOO "
            f"shrinkage, window {window[0]:g}-{window[1]:g} nm, "
            f"albedo_correction={self.albedo_correction}, "
            f"second_pass={self.second_pass}"
        )


DEFAULT_OPTIONS = MatchedFilterOptions()
"""The default settings (JPL EMIT GHG and mag1c choices, see :class:`MatchedFilterOptions`)."""


@dataclass(frozen=True)
class MatchedFilterResult:
    """Matched-filter output on the raw (downtrack, crosstrack) geometry.

    Attributes:
        enhancement_ppm_m: CH4 path enhancement, ppm·m, float32, NaN where invalid.
        sd_ppm_m: per-pixel 1-sigma uncertainty, ppm·m, float32, NaN where invalid.
        valid: True where the pixel passed screening and its column group had statistics.
        column_group: (crosstrack,) index of the statistics group of each column, -1 if none.
        shrinkage: (n_groups,) shrinkage weight ``a`` chosen per group (last pass).
        plume_excluded: pixels removed from the statistics by the plume passes.
        band_index: indices of the bands used (the CH4 window).
    """

    enhancement_ppm_m: np.ndarray
    sd_ppm_m: np.ndarray
    valid: np.ndarray
    column_group: np.ndarray
    shrinkage: np.ndarray
    plume_excluded: np.ndarray
    band_index: np.ndarray


def plume_pixels(
    z: np.ndarray, sigma: float, grow_sigma: float, min_pixels: int, dilation_px: int
) -> np.ndarray:
    """Pixels to drop from the refit statistics: significant connected plume regions, dilated.

    ``z`` is the significance of the Gaussian-smoothed enhancement (``plume_mask.significance_map``,
    exact for independent pixel errors) divided by its robust scene spread (``plume_mask.robust_spread``,
    ~1.2 on the generated full scene). Hysteresis thresholding (Canny 1986, IEEE TPAMI 8 679):
    8-connected regions of ``z > grow_sigma`` are kept when they hold at least ``min_pixels`` pixels
    with ``z > sigma``, then dilated by ``dilation_px``. A plume of only ~1-3 sigma per pixel stands out
    as a whole and is kept down to its faint edges, while single noise exceedances and weak clutter stay
    in the statistics (at 4 sigma, 1.5 px, 10 px no chance component in 2.5 million white-noise pixels,
    see ``science.detection.plume_mask``).
    """
    low = z > min(grow_sigma, sigma)  # NaN compares False
    if not low.any():
        return low
    labels, n = ndimage.label(low, structure=EIGHT_CONNECTED)
    seeds = np.bincount(labels[z > sigma], minlength=n + 1) >= max(min_pixels, 1)
    seeds[0] = False
    core = seeds[labels]
    if dilation_px > 0 and core.any():
        # dilate only the bounding box of the regions (plus the dilation reach): same result, a plume
        # covers a small part of a full scene
        rows, cols = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
        box = (
            slice(max(rows[0] - dilation_px, 0), rows[-1] + dilation_px + 1),
            slice(max(cols[0] - dilation_px, 0), cols[-1] + dilation_px + 1),
        )
        core[box] = ndimage.binary_dilation(core[box], iterations=dilation_px)
    return core


def update_significance(
    z: np.ndarray, alpha: np.ndarray, sd: np.ndarray, cols: np.ndarray, smoothing_px: float
) -> None:
    """Recompute in place the smoothed significance of columns ``cols`` and of those within the kernel's
    reach of them (exactly the full-map values: each run of columns is smoothed with a margin of one
    kernel radius, and ``significance_map`` pads with zeros only at the image edges)."""
    reach = kernel_radius(smoothing_px) if smoothing_px > 0 else 0
    n_col = z.shape[1]
    breaks = np.flatnonzero(np.diff(cols) > 2 * reach + 1) + 1
    for run in np.split(cols, breaks):
        a, b = max(int(run[0]) - reach, 0), min(int(run[-1]) + reach + 1, n_col)
        lo, hi = max(a - reach, 0), min(b + reach, n_col)
        z[:, a:b] = significance_map(alpha[:, lo:hi], sd[:, lo:hi], smoothing_px)[:, a - lo : b - lo]


@dataclass(frozen=True)
class GroupFit:
    """Filter quantities of every column group (``G`` groups, ``B`` window bands).

    ``group`` ``(crosstrack,)`` maps columns to groups (-1 = none); per group: ``mean`` radiance
    ``(G, B)``, the chosen ``shrinkage`` ``(G,)``, ``q = C^-1 t`` ``(G, B)`` and ``den = t^T C^-1 t``
    ``(G,)``. ``refitted`` lists the groups computed by the call that made this fit.
    """

    group: np.ndarray
    mean: np.ndarray
    shrinkage: np.ndarray
    q: np.ndarray
    den: np.ndarray
    refitted: np.ndarray

    def with_groups(self, redo: np.ndarray, mean: np.ndarray, q: np.ndarray, den: np.ndarray) -> GroupFit:
        """A new fit equal to this one except for groups ``redo`` (same grouping and shrinkage)."""
        new_mean, new_q, new_den = self.mean.copy(), self.q.copy(), self.den.copy()
        new_mean[redo], new_q[redo], new_den[redo] = mean, q, den
        return GroupFit(self.group, new_mean, self.shrinkage, new_q, new_den, redo)


def filter_vectors(
    k_band: np.ndarray, mean: np.ndarray, basis: CorrelationEigen, a: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``q = C^-1 t`` ``(G, B)`` and ``t^T C^-1 t`` ``(G,)`` for the shrunk covariance of every group.

    ``t = k_band * mean`` (``k_band`` in 1/(ppm·m)); ``C = diag(s) ((1 - a) R + a I) diag(s)`` with ``R``
    the correlation matrix and ``s`` the scale of ``basis``, solved in its eigenbasis.
    """
    t = k_band[None, :] * mean
    u = np.einsum("gbe,gb->ge", basis.eigvec, t / basis.scale)
    d = shrunk_eigenvalues(basis.eigval, a[:, None])
    q = np.einsum("gbe,ge->gb", basis.eigvec, u / d) / basis.scale
    return q, np.einsum("gb,gb->g", t, q)


@dataclass(frozen=True)
class _FilterRun:
    """Window radiance ``xw (downtrack, crosstrack, band)`` and the settings of one filter run."""

    xw: np.ndarray
    k_band: np.ndarray
    min_pixels: int
    grid: np.ndarray
    albedo: bool
    chunk: int

    def fit(
        self,
        use: np.ndarray,
        moments: ColumnMoments,
        previous: GroupFit | None = None,
        touched: np.ndarray | None = None,
    ) -> GroupFit:
        """Group statistics, shrinkage and filter vectors of the ``use`` pixels with ``moments``.

        Without ``previous`` every group is fitted: eigenbasis of its correlation matrix, leave-one-out
        shrinkage, filter vectors. With the ``previous`` fit and the columns ``touched`` since, and an
        unchanged grouping (a plume pass), only the groups holding a touched column are refitted,
        keeping their shrinkage and solving the shrunk correlation matrix directly (the choice of ``a``
        is a property of the background that a plume's removal barely moves; the solve costs a tenth
        of an eigendecomposition).
        """
        group = column_groups(moments.count.astype(np.int64), self.min_pixels)
        n_band = self.xw.shape[2]
        if group.max() < 0:
            empty, none = np.zeros((0, n_band)), np.zeros(0)
            return GroupFit(group, empty, none, empty, none, np.zeros(0, dtype=np.int64))
        count, mean, scatter = pool_groups(moments, group)
        if previous is not None and touched is not None and np.array_equal(previous.group, group):
            redo = np.unique(group[touched])
            redo = redo[redo >= 0]
            count, mean, a = count[redo], mean[redo], previous.shrinkage[redo]
            scale, corr = correlation(scatter[redo], count)
            shrunk = (1.0 - a)[:, None, None] * corr + a[:, None, None] * np.eye(n_band)
            t = self.k_band[None, :] * mean
            q = np.linalg.solve(shrunk, (t / scale)[..., None])[..., 0] / scale
            return previous.with_groups(redo, mean, q, np.einsum("gb,gb->g", t, q))
        basis = correlation_eigen(scatter, count)
        a = loo_shrinkage(self.xw, use, group, count, mean, basis, self.grid, self.chunk)
        q, den = filter_vectors(self.k_band, mean, basis, a)
        return GroupFit(group, mean, a, q, den, np.arange(count.size))

    def apply(
        self, out_mask: np.ndarray, fit: GroupFit, cols: np.ndarray, alpha: np.ndarray, sd: np.ndarray
    ) -> None:
        """Write enhancement and uncertainty (ppm·m) of the ``out_mask`` pixels of columns ``cols``.

        Float32 on radiance centred on its group mean (the centring is exact to float32 rounding of the
        radiance; the dot products then carry ~1e-7 relative error).
        """
        cols = cols[fit.group[cols] >= 0]

        def work(_offset: int, cc: np.ndarray) -> None:
            g = fit.group[cc]
            mu = fit.mean[g]
            x = column_block(self.xw, cc, np.float32)
            x -= mu.astype(np.float32)[:, None, :]
            proj = np.stack([fit.q[g], mu / np.einsum("cb,cb->c", mu, mu)[:, None]], axis=-1)
            out = np.matmul(x, proj.astype(np.float32))  # (c, D, 2): (x - mu)^T q, (x - mu)^T mu / mu^T mu
            ratio = 1.0 + out[..., 1] if self.albedo else 1.0
            den = fit.den[g][:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                a_blk = out[..., 0] / (ratio * den)
                s_blk = 1.0 / (ratio * np.sqrt(den))
            ok = out_mask[:, cc].T & np.isfinite(a_blk) & np.isfinite(s_blk) & (s_blk > 0)
            alpha[:, cc] = np.where(ok, a_blk, np.nan).T
            sd[:, cc] = np.where(ok, s_blk, np.nan).T

        run_chunks(work, cols, self.chunk)


def matched_filter(
    radiance: np.ndarray,
    wavelength_nm: np.ndarray,
    fwhm_nm: np.ndarray,
    k_hi: tuple[np.ndarray, np.ndarray, np.ndarray],
    options: MatchedFilterOptions = DEFAULT_OPTIONS,
    *,
    exclude: np.ndarray | None = None,
) -> MatchedFilterResult:
    """CH4 matched filter on raw pushbroom geometry (see the module docstring for the method).

    Args:
        radiance: ``(downtrack, crosstrack, band)`` radiance, uW cm-2 sr-1 nm-1 (float32 or float64).
        wavelength_nm: ``(band,)`` band centres, nm. fwhm_nm: ``(band,)`` band FWHM, nm.
        k_hi: CH4 radiance LUT ``(wavelength_nm, radiance (n_conc, n_wl), concentration_ppm_m)`` as
            returned by ``readers.reference.load_ch4_unit_absorption``.
        options: :class:`MatchedFilterOptions`.
        exclude: optional ``(downtrack, crosstrack)`` bool, True = drop from statistics and output.

    Returns:
        :class:`MatchedFilterResult` with positive ppm·m for a CH4 excess.
    """
    radiance = np.asarray(radiance)
    if radiance.ndim != 3 or radiance.shape[-1] != np.size(wavelength_nm):
        raise ValueError(
            f"radiance must be (downtrack, crosstrack, band={np.size(wavelength_nm)}), got {radiance.shape}"
        )
    band_index = window_bands(wavelength_nm, options.window_nm)
    k_band = band_unit_absorption(
        *k_hi, np.asarray(wavelength_nm)[band_index], np.asarray(fwhm_nm)[band_index]
    )
    if band_index.size < 2 or not np.any(k_band < 0):
        raise ValueError(f"no CH4-absorbing bands inside window {options.window_nm} nm")
    usable = screen_pixels(
        radiance,
        wavelength_nm,
        band_index,
        fill_value=options.fill_value,
        saturation_threshold=options.saturation_threshold,
        flare_threshold=options.flare_threshold,
        cloud_threshold=options.cloud_threshold,
        exclude=exclude,
    )
    run = _FilterRun(
        take_bands(radiance, band_index),
        k_band,
        int(np.ceil(options.min_pixels_per_band * band_index.size)),
        np.asarray(options.shrinkage_grid, dtype=np.float64),
        options.albedo_correction,
        max(int(options.column_chunk), 1),
    )
    alpha = np.full(usable.shape, np.nan, dtype=np.float32)
    sd = np.full(usable.shape, np.nan, dtype=np.float32)
    all_cols = np.arange(usable.shape[1])
    moments = column_moments(run.xw, usable, all_cols, run.chunk)
    fit = run.fit(usable, moments)
    run.apply(usable, fit, all_cols, alpha, sd)
    excluded = np.zeros_like(usable)
    if options.second_pass and fit.group.max() >= 0:
        fit = _exclude_plumes(run, options, usable, moments, fit, (alpha, sd, excluded))
    return MatchedFilterResult(alpha, sd, np.isfinite(alpha), fit.group, fit.shrinkage, excluded, band_index)


def _exclude_plumes(
    run: _FilterRun,
    options: MatchedFilterOptions,
    usable: np.ndarray,
    moments: ColumnMoments,
    fit: GroupFit,
    maps: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> GroupFit:
    """The plume passes of the second pass (see :class:`MatchedFilterOptions`); returns the last fit.

    Updates in place ``maps = (alpha, sd, excluded)`` (enhancement and uncertainty in ppm·m, pixels
    removed from the statistics) and ``moments``.
    """
    alpha, sd, excluded = maps
    passes = max(int(options.plume_passes), 0)
    if passes == 0:
        return fit
    all_cols = np.arange(usable.shape[1])
    z = significance_map(alpha, sd, options.plume_smoothing_px)
    spread = robust_spread(z)  # a property of the scene: kept over the passes
    for _ in range(passes):
        found = plume_pixels(
            z / spread,
            options.plume_sigma,
            options.plume_grow_sigma,
            options.plume_min_pixels,
            options.plume_dilation_px,
        )
        new = found & usable & ~excluded
        touched = np.flatnonzero(new.sum(axis=0) > options.plume_refit_fraction * usable.sum(axis=0))
        if touched.size == 0:
            break
        excluded[:, touched] |= new[:, touched]
        moments.downdate(run.xw, new, touched)
        refit = run.fit(usable & ~excluded, moments, fit, touched)
        regrouped = not np.array_equal(refit.group, fit.group)
        redo = all_cols if regrouped else np.flatnonzero(np.isin(refit.group, refit.refitted))
        fit = refit
        alpha[:, redo] = np.nan
        sd[:, redo] = np.nan
        run.apply(usable, fit, redo, alpha, sd)
        update_significance(z, alpha, sd, redo, options.plume_smoothing_px)
    return fit
