"""Band-averaged CH4 unit absorption for an imaging spectrometer.

The high-resolution unit absorption ``k(λ) = d ln L / d c`` (1/(ppm·m)) is convolved with each band's
Gaussian spectral response function, as in the target generation of mag1c (Foote et al. 2020, IEEE TGRS
58(9) 6480-6492) and the JPL EMIT GHG matched filter (Thompson et al. 2015, AMT 8 4383-4397).
"""

from __future__ import annotations

import numpy as np

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # = 1 / 2.3548


def gaussian_srf(
    wavelength_hi_nm: np.ndarray, band_centres_nm: np.ndarray, fwhm_nm: np.ndarray
) -> np.ndarray:
    """Normalised Gaussian SRF weights, shape ``(n_hi, n_bands)``; each column sums to 1.

    A trapezoid quadrature weight (local grid spacing) makes the result independent of grid irregularity.
    Bands with no support on the high-resolution grid get all-zero columns.
    """
    wl = np.asarray(wavelength_hi_nm, dtype=np.float64)
    centres = np.atleast_1d(np.asarray(band_centres_nm, dtype=np.float64))
    sigma = np.broadcast_to(np.asarray(fwhm_nm, dtype=np.float64) * FWHM_TO_SIGMA, centres.shape)
    dw = np.gradient(wl) if wl.size > 1 else np.ones_like(wl)
    weights = np.exp(-0.5 * ((wl[:, None] - centres[None, :]) / sigma[None, :]) ** 2) * dw[:, None]
    total = weights.sum(axis=0)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 1e-300)


def band_unit_absorption(
    wavelength_hi_nm: np.ndarray, k_hi: np.ndarray, band_centres_nm: np.ndarray, fwhm_nm: np.ndarray
) -> np.ndarray:
    """Convolve the high-resolution unit absorption to instrument bands.

    Args:
        wavelength_hi_nm: increasing high-resolution wavelengths, nm, shape ``(n_hi,)``.
        k_hi: unit absorption ``d ln L / d c`` at those wavelengths, 1/(ppm·m).
        band_centres_nm: band centre wavelengths, nm, shape ``(n_bands,)``.
        fwhm_nm: band full width at half maximum, nm (scalar or ``(n_bands,)``); Gaussian SRF with
            sigma = FWHM / 2.3548, normalised to unit sum on the grid.

    Returns:
        Band unit absorption in 1/(ppm·m), shape ``(n_bands,)``. Bands more than ~4 sigma outside the
        high-resolution grid (no spectral support, e.g. visible bands) get 0.
    """
    centres = np.atleast_1d(np.asarray(band_centres_nm, dtype=np.float64))
    wl = np.asarray(wavelength_hi_nm, dtype=np.float64)
    fwhm = np.broadcast_to(np.asarray(fwhm_nm, dtype=np.float64), centres.shape)
    sigma = fwhm * FWHM_TO_SIGMA
    inside = (centres >= wl[0] - 4 * sigma) & (centres <= wl[-1] + 4 * sigma)
    out = np.zeros(centres.shape, dtype=np.float64)
    if inside.any():
        srf = gaussian_srf(wl, centres[inside], fwhm[inside])
        out[inside] = np.asarray(k_hi, dtype=np.float64) @ srf
    return out
