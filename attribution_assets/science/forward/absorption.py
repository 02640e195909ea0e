"""Band CH4 unit absorption for an imaging spectrometer, from a radiative-transfer radiance LUT.

The unit absorption of band ``b`` is the least-squares slope ``k_b`` of ``ln L_b(c) = a_b + k_b c`` over
the LUT concentrations ``c`` (ppm·m), where ``L_b(c) = Σ_λ s_b(λ) L(λ, c)`` is the LUT radiance convolved
with the band's Gaussian spectral response ``s_b`` (σ = FWHM / 2.3548, normalised). This is the target
generation of mag1c (``generate_template_from_bands``; Foote et al. 2020, IEEE TGRS 58(9) 6480-6492) and
of the JPL EMIT GHG matched filter (Thompson et al. 2015, AMT 8 4383-4397).

Convolving *before* taking the logarithm matters: inside a band, strong narrow lines saturate and stop
contributing to ``d L_b / d c``, so the band value is smaller in magnitude than the SRF average of the
per-wavelength slope ``d ln L(λ) / d c`` (:func:`band_average_absorption`), by a factor of up to ~2 in
the strongest CH4 bands at EMIT resolution. The two agree for weak, optically thin absorption.
"""

from __future__ import annotations

import numpy as np

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # = 1 / 2.3548


def gaussian_srf(
    wavelength_hi_nm: np.ndarray, band_centres_nm: np.ndarray, fwhm_nm: np.ndarray
) -> np.ndarray:
    """Normalised Gaussian SRF weights, shape ``(n_hi, n_bands)``; each column sums to 1.

    A trapezoid quadrature weight (local grid spacing) makes the result independent of grid irregularity
    (on a regular grid it is mag1c's plain normalisation). Bands with no support get all-zero columns.
    """
    wl = np.asarray(wavelength_hi_nm, dtype=np.float64)
    centres = np.atleast_1d(np.asarray(band_centres_nm, dtype=np.float64))
    sigma = np.broadcast_to(np.asarray(fwhm_nm, dtype=np.float64) * FWHM_TO_SIGMA, centres.shape)
    dw = np.gradient(wl) if wl.size > 1 else np.ones_like(wl)
    weights = np.exp(-0.5 * ((wl[:, None] - centres[None, :]) / sigma[None, :]) ** 2) * dw[:, None]
    total = weights.sum(axis=0)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 1e-300)


def _supported(wl: np.ndarray, centres: np.ndarray, fwhm: np.ndarray) -> np.ndarray:
    sigma = fwhm * FWHM_TO_SIGMA
    return (centres >= wl[0] - 4 * sigma) & (centres <= wl[-1] + 4 * sigma)


def band_unit_absorption(
    wavelength_hi_nm: np.ndarray,
    radiance_hi: np.ndarray,
    concentration_ppm_m: np.ndarray,
    band_centres_nm: np.ndarray,
    fwhm_nm: np.ndarray,
) -> np.ndarray:
    """Band unit absorption ``d ln L_b / d c`` from a radiance LUT (convolve, then regress).

    Args:
        wavelength_hi_nm: increasing high-resolution wavelengths, nm, shape ``(n_hi,)``.
        radiance_hi: LUT at-sensor radiance (any units, positive), shape ``(n_conc, n_hi)``.
        concentration_ppm_m: CH4 path enhancement of each LUT row, ppm·m, shape ``(n_conc,)``, ≥ 2 distinct.
        band_centres_nm: band centre wavelengths, nm, shape ``(n_bands,)``.
        fwhm_nm: band full width at half maximum, nm (scalar or ``(n_bands,)``); Gaussian SRF with
            sigma = FWHM / 2.3548, normalised to unit sum on the grid.

    Returns:
        Band unit absorption in 1/(ppm·m), shape ``(n_bands,)`` (negative where CH4 absorbs): the OLS
        slope of ln(band radiance) on concentration. Bands more than ~4 sigma outside the high-resolution
        grid (no spectral support, e.g. visible bands) get 0.
    """
    wl = np.asarray(wavelength_hi_nm, dtype=np.float64)
    radiance = np.atleast_2d(np.asarray(radiance_hi, dtype=np.float64))
    conc = np.asarray(concentration_ppm_m, dtype=np.float64)
    if radiance.shape != (conc.size, wl.size):
        raise ValueError(f"radiance_hi must be (n_conc={conc.size}, n_hi={wl.size}), got {radiance.shape}")
    centres = np.atleast_1d(np.asarray(band_centres_nm, dtype=np.float64))
    fwhm = np.broadcast_to(np.asarray(fwhm_nm, dtype=np.float64), centres.shape)
    inside = _supported(wl, centres, fwhm)
    out = np.zeros(centres.shape, dtype=np.float64)
    if inside.any():
        # The LUT beyond 8 sigma of every band carries < 1e-14 of any SRF: skip it (31 800 -> ~3 000 rows
        # for the 2137-2493 nm window).
        reach = 8.0 * FWHM_TO_SIGMA * float(fwhm[inside].max())
        lo = np.searchsorted(wl, centres[inside].min() - reach)
        hi = np.searchsorted(wl, centres[inside].max() + reach, side="right")
        srf = gaussian_srf(wl[lo:hi], centres[inside], fwhm[inside])
        band_radiance = radiance[:, lo:hi] @ srf  # (n_conc, n_in)
        log_l = np.log(np.clip(band_radiance, np.finfo(np.float64).tiny, None))
        dc = conc - conc.mean()
        out[inside] = dc @ (log_l - log_l.mean(axis=0)) / (dc @ dc)
    return out


def band_average_absorption(
    wavelength_hi_nm: np.ndarray, k_hi: np.ndarray, band_centres_nm: np.ndarray, fwhm_nm: np.ndarray
) -> np.ndarray:
    """SRF-weighted mean of a per-wavelength unit absorption ``k(λ)`` (1/(ppm·m)), shape ``(n_bands,)``.

    The linear approximation to :func:`band_unit_absorption`, exact only for optically thin absorption;
    kept for comparison and for spectra already given as ``d ln L / d c``. Unsupported bands get 0.
    """
    wl = np.asarray(wavelength_hi_nm, dtype=np.float64)
    centres = np.atleast_1d(np.asarray(band_centres_nm, dtype=np.float64))
    fwhm = np.broadcast_to(np.asarray(fwhm_nm, dtype=np.float64), centres.shape)
    inside = _supported(wl, centres, fwhm)
    out = np.zeros(centres.shape, dtype=np.float64)
    if inside.any():
        out[inside] = np.asarray(k_hi, dtype=np.float64) @ gaussian_srf(wl, centres[inside], fwhm[inside])
    return out


def unit_absorption_spectrum(radiance_hi: np.ndarray, concentration_ppm_m: np.ndarray) -> np.ndarray:
    """Per-wavelength OLS slope of ``ln L(λ, c)`` on ``c``, 1/(ppm·m), shape ``(n_hi,)``."""
    radiance = np.asarray(radiance_hi, dtype=np.float64)
    conc = np.asarray(concentration_ppm_m, dtype=np.float64)
    log_l = np.log(np.clip(radiance, np.finfo(np.float64).tiny, None))
    dc = conc - conc.mean()
    return dc @ (log_l - log_l.mean(axis=0)) / (dc @ dc)
