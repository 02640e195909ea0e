"""Pixel screening of the CH4 matched filter: the pixels excluded from the statistics and reported invalid.

Tests (radiances in uW cm-2 sr-1 nm-1, EMIT L1B units): non-finite or fill (``fill_value``) radiance in
any window band; saturation (any window band above ``saturation_threshold``, 6.0 as mag1c, Foote et
al. 2020, IEEE TGRS 58(9) 6480-6492); flares (radiance of the band nearest 2389 nm above
``flare_threshold``, 1.5 as the JPL EMIT GHG code); optional clouds (mean radiance over the 450-1250 nm
continuum above ``cloud_threshold``); an optional caller ``exclude`` mask. The defaults live in
:class:`~attribution_assets.science.detection.matched_filter.filter.MatchedFilterOptions`.
"""

from __future__ import annotations

import numpy as np

from attribution_assets.science.detection.matched_filter.columns import WORKERS, run_chunks, take_bands

FILL_VALUE = -9999.0
"""EMIT L1B fill radiance."""
CH4_WINDOW_NM = (2137.0, 2493.0)
"""Spectral window of the CH4 matched filter, nm (JPL EMIT GHG)."""
FLARE_WAVELENGTH_NM = 2389.0
CLOUD_CONTINUUM_NM = (450.0, 1250.0)


def window_bands(wavelength_nm: np.ndarray, window_nm: tuple[float, float]) -> np.ndarray:
    """Indices of the bands whose centre lies inside ``window_nm`` (inclusive), nm."""
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    return np.flatnonzero((wl >= window_nm[0]) & (wl <= window_nm[1]))


def screen_pixels(
    radiance: np.ndarray,
    wavelength_nm: np.ndarray,
    band_index: np.ndarray,
    *,
    fill_value: float,
    saturation_threshold: float | None,
    flare_threshold: float | None,
    cloud_threshold: float | None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Usable pixels ``(downtrack, crosstrack)``: finite, not fill, not saturated, no flare, no cloud.

    Args:
        radiance: ``(downtrack, crosstrack, band)``, uW cm-2 sr-1 nm-1.
        wavelength_nm: ``(band,)`` band centres, nm. band_index: the window bands.
        fill_value, saturation_threshold, flare_threshold, cloud_threshold: radiances in
            uW cm-2 sr-1 nm-1 (see the module docstring); ``None`` disables a test.
        exclude: optional ``(downtrack, crosstrack)`` bool, True = drop.

    The window bands are reduced once to their per-pixel minimum and maximum (NaN propagates through
    both; crosstrack pieces on the worker threads); only pixels whose minimum reaches ``fill_value``
    are compared band by band with it.
    """
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    xw = take_bands(radiance, band_index)
    low = np.empty(xw.shape[:-1], dtype=xw.dtype)
    high = np.empty_like(low)

    def work(_offset: int, cols: np.ndarray) -> None:
        piece = xw[:, cols[0] : cols[-1] + 1, :]
        low[:, cols[0] : cols[-1] + 1] = piece.min(axis=-1)
        high[:, cols[0] : cols[-1] + 1] = piece.max(axis=-1)

    n_col = xw.shape[-2]
    run_chunks(work, np.arange(n_col), max(1, -(-n_col // (4 * WORKERS))))
    usable = np.isfinite(low) & np.isfinite(high)
    maybe_fill = usable & (low <= fill_value)
    if maybe_fill.any():
        usable[maybe_fill] = ~(xw[maybe_fill] == fill_value).any(axis=-1)
    if saturation_threshold is not None:
        usable &= ~(high > saturation_threshold)
    i_flare = int(np.argmin(np.abs(wl - FLARE_WAVELENGTH_NM)))
    if flare_threshold is not None and abs(wl[i_flare] - FLARE_WAVELENGTH_NM) <= 10.0:
        usable &= ~(radiance[..., i_flare] > flare_threshold)
    if cloud_threshold is not None:
        usable &= ~(_continuum(radiance, wl) > cloud_threshold)
    if exclude is not None:
        usable &= ~np.asarray(exclude, dtype=bool)
    return usable


def _continuum(radiance: np.ndarray, wl: np.ndarray) -> np.ndarray:
    """Mean radiance over the :data:`CLOUD_CONTINUUM_NM` bands (float64), uW cm-2 sr-1 nm-1."""
    cloud_bands = window_bands(wl, CLOUD_CONTINUUM_NM)
    if not cloud_bands.size:
        raise ValueError(
            f"cloud screening needs bands in the {CLOUD_CONTINUUM_NM} nm continuum; the radiance holds "
            f"{wl.min():.0f}-{wl.max():.0f} nm (read the scene without a CH4-only band window)"
        )
    return take_bands(radiance, cloud_bands).mean(axis=-1, dtype=np.float64)
