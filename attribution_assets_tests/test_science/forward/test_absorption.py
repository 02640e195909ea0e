"""CH4 radiance LUT and its convolution to instrument band unit absorption."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from attribution_assets.readers.reference import CH4_LUT_CSV, load_ch4_unit_absorption
from attribution_assets.science.forward.absorption import (
    FWHM_TO_SIGMA,
    band_average_absorption,
    band_unit_absorption,
    gaussian_srf,
    unit_absorption_spectrum,
)

MAG1C_DIR = Path("/tmp/mag1c/unpacked/mag1c")
CONC = np.array([0.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0])


def _toy_lut(peak_k_per_ppm_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat continuum with one narrow (0.2 nm) Gaussian absorption line at 2300 nm: (wl, radiance)."""
    wl = np.arange(2250.0, 2350.0, 0.02)
    k = peak_k_per_ppm_m * np.exp(-0.5 * ((wl - 2300.0) / 0.2) ** 2)
    radiance = np.exp(CONC[:, None] * k[None, :])
    return wl, radiance


def test_reference_table_shape_and_physics():
    wl, radiance, conc = load_ch4_unit_absorption()
    assert CH4_LUT_CSV.stat().st_size < 2_000_000
    assert wl[0] == pytest.approx(2000.0) and wl[-1] > 2521.0
    np.testing.assert_allclose(np.diff(wl), 0.1, atol=1e-6)
    np.testing.assert_array_equal(conc, CONC)
    assert radiance.shape == (7, wl.size)
    k = unit_absorption_spectrum(radiance, conc)
    assert np.all(k <= 1e-7), "d ln L / dc must not be significantly positive"
    assert 2200 < wl[np.argmin(k)] < 2400


def test_band_absorption_at_emit_resolution_is_plausible():
    lut = load_ch4_unit_absorption()
    centres = np.arange(2137.0, 2493.0, 7.4)
    kb = band_unit_absorption(*lut, centres, 8.5)
    # ~1e-5 per ppm·m at the 2.3 um band maximum: 1000 ppm·m removes about 1 % of the band radiance.
    assert -3e-5 < kb.min() < -5e-6
    assert np.all(kb < 0)
    # Saturation: in the strongest bands averaging d ln L/dc over the SRF overstates |k| markedly.
    averaged = band_average_absorption(lut[0], unit_absorption_spectrum(lut[1], lut[2]), centres, 8.5)
    strong = kb < 0.5 * kb.min()
    assert np.max(averaged[strong] / kb[strong]) > 1.5


def test_strong_narrow_line_saturates_weak_line_agrees():
    centres, fwhm = np.array([2300.0, 2302.0]), 8.5
    wl, strong = _toy_lut(-1e-3)  # optical depth 16 at the line centre for 16000 ppm·m
    k_band = band_unit_absorption(wl, strong, CONC, centres, fwhm)
    k_avg = band_average_absorption(wl, unit_absorption_spectrum(strong, CONC), centres, fwhm)
    assert np.all(k_band < 0) and np.all(np.abs(k_band) < 0.5 * np.abs(k_avg))
    wl, weak = _toy_lut(-1e-7)  # optical depth 1.6e-3
    k_band = band_unit_absorption(wl, weak, CONC, centres, fwhm)
    k_avg = band_average_absorption(wl, unit_absorption_spectrum(weak, CONC), centres, fwhm)
    np.testing.assert_allclose(k_band, k_avg, rtol=0.01)


def test_constant_absorption_and_unsupported_bands():
    wl = np.linspace(2000.0, 2500.0, 3001)
    radiance = (1.0 + 0.5 * np.sin(wl / 7.0))[None, :] * np.exp(-2e-6 * CONC)[:, None]
    kb = band_unit_absorption(wl, radiance, CONC, np.array([2100.0, 2300.0, 1000.0]), 8.5)
    np.testing.assert_allclose(kb, [-2e-6, -2e-6, 0.0], rtol=1e-9, atol=0)
    with pytest.raises(ValueError, match="n_conc"):
        band_unit_absorption(wl, radiance[:3], CONC, np.array([2100.0]), 8.5)


def test_delta_spectrum_gives_gaussian_srf():
    wl = np.arange(2200.0, 2400.0, 0.1)
    i0 = int(np.argmin(np.abs(wl - 2300.0)))
    k = np.zeros_like(wl)
    k[i0] = 1.0
    centres = np.array([2290.0, 2296.5, 2300.0, 2304.0, 2311.0])
    fwhm = np.array([8.5, 8.5, 8.5, 6.0, 10.0])
    sigma = fwhm * FWHM_TO_SIGMA
    expected = 0.1 / (sigma * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((wl[i0] - centres) / sigma) ** 2)
    np.testing.assert_allclose(band_average_absorption(wl, k, centres, fwhm), expected, rtol=1e-6)
    irregular = np.linspace(2000.0, 2500.0, 3001) ** 1.0001
    np.testing.assert_allclose(gaussian_srf(irregular, centres, fwhm).sum(axis=0), 1.0)


@pytest.mark.skipif(not (MAG1C_DIR / "ch4.hdr").exists(), reason="mag1c LUT not unpacked in /tmp/mag1c")
def test_matches_mag1c_generate_template_from_bands():
    """Re-derive mag1c's template (Foote et al. 2020) from the full-resolution LUT for a few bands."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from derive_ch4_unit_absorption import read_envi_lut

    wave, rads = read_envi_lut(MAG1C_DIR / "ch4.hdr")  # (7, 31800)
    centres = np.array([2200.0, 2278.0, 2305.6, 2320.0, 2359.0, 2385.0, 2450.0])
    fwhm = np.full(centres.size, 8.5)
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    response = np.exp(-((wave[:, None] - centres[None, :]) ** 2) / (2 * sigma**2)) / np.sqrt(
        2 * np.pi * sigma**2
    )
    response /= response.sum(axis=0)
    lograd = np.log(rads @ response)
    design = np.stack((np.ones_like(CONC), CONC)).T
    mag1c = np.linalg.lstsq(design, lograd, rcond=None)[0][1]
    ours = band_unit_absorption(*load_ch4_unit_absorption(), centres, fwhm)
    # mag1c weights unevenly spaced LUT samples by count, not by wavelength interval: ~0.3 % apart.
    np.testing.assert_allclose(ours, mag1c, rtol=0.01)
