"""CH4 unit absorption table and its convolution to instrument bands."""

from __future__ import annotations

import numpy as np
import pytest

from attribution_assets.readers.reference import DATA_DIR, load_ch4_unit_absorption
from attribution_assets.science.absorption import FWHM_TO_SIGMA, band_unit_absorption, gaussian_srf


def test_reference_table_shape_and_physics():
    wl, k = load_ch4_unit_absorption()
    assert (DATA_DIR / "reference" / "ch4_unit_absorption.csv").stat().st_size < 1_000_000
    assert wl[0] == pytest.approx(2000.0) and wl[-1] > 2521.0
    np.testing.assert_allclose(np.diff(wl), 0.1, atol=1e-6)
    assert np.all(k <= 1e-7), "d ln L / dc must not be significantly positive"
    # The 2.3 um CH4 band: strongest absorption between 2200 and 2400 nm, weak near 2100 nm.
    assert 2200 < wl[np.argmin(k)] < 2400
    assert k[(wl > 2300) & (wl < 2400)].mean() < 100 * k[(wl > 2040) & (wl < 2080)].mean()


def test_band_absorption_at_emit_resolution_is_plausible():
    wl, k = load_ch4_unit_absorption()
    centres = np.arange(2137.0, 2493.0, 7.4)
    kb = band_unit_absorption(wl, k, centres, 8.5)
    # ~1e-5 per ppm·m at the 2.3 um band maximum: 1000 ppm·m removes a few percent of radiance.
    assert -5e-5 < kb.min() < -5e-6
    assert np.all(kb < 0)


def test_delta_spectrum_gives_gaussian_srf():
    wl = np.arange(2200.0, 2400.0, 0.1)
    i0 = int(np.argmin(np.abs(wl - 2300.0)))
    k = np.zeros_like(wl)
    k[i0] = 1.0
    centres = np.array([2290.0, 2296.5, 2300.0, 2304.0, 2311.0])
    fwhm = np.array([8.5, 8.5, 8.5, 6.0, 10.0])
    sigma = fwhm * FWHM_TO_SIGMA
    expected = 0.1 / (sigma * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((wl[i0] - centres) / sigma) ** 2)
    np.testing.assert_allclose(band_unit_absorption(wl, k, centres, fwhm), expected, rtol=1e-6)


def test_srf_normalised_and_constant_preserved():
    wl = np.linspace(2000.0, 2500.0, 3001) ** 1.0001  # slightly irregular grid
    srf = gaussian_srf(wl, np.array([2100.0, 2300.0]), np.array([8.5, 8.5]))
    np.testing.assert_allclose(srf.sum(axis=0), 1.0)
    kb = band_unit_absorption(wl, np.full(wl.size, -2e-6), np.array([2100.0, 2300.0, 1000.0]), 8.5)
    np.testing.assert_allclose(kb, [-2e-6, -2e-6, 0.0], rtol=1e-12, atol=0)
