"""IME and CSF baselines on a simulated Gaussian plume, calibrations and Monte-Carlo uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from attribution_assets.science.forward.plume import column_enhancement_kg_m2
from attribution_assets.science.quantification import ime

PIXEL_M = 60.0
X = np.arange(-300.0, 3000.0, PIXEL_M) + PIXEL_M / 2
Y = np.arange(-1200.0, 1200.0, PIXEL_M) + PIXEL_M / 2


def plume(q_kg_s: float, u_m_s: float, s: float) -> np.ndarray:
    """Noise-free column enhancement (kg m-2) on a 60 m grid, source at the origin, wind towards +x."""
    gx, gy = np.meshgrid(X, Y)
    return np.asarray(
        column_enhancement_kg_m2(np.stack([gx, gy], -1), np.zeros(2), q_kg_s, u_m_s, 0.0, s), np.float64
    )


@pytest.mark.parametrize("s", [1.0, 3.0, 4.0])
def test_ime_recovers_rate_with_the_right_effective_wind(s: float) -> None:
    """For a steady plume the mask holds Q * l / u kg (l its downwind length), so U_eff = u L / l is exact."""
    q, u = 0.5, 4.0
    omega = plume(q, u, s)
    mask = omega > 0.03 * omega.max()
    area = PIXEL_M**2
    length = ime.ime_length_m(mask, area)
    assert length == pytest.approx(math.sqrt(mask.sum() * area))
    downwind = np.meshgrid(X, Y)[0][mask].max() + PIXEL_M / 2
    estimate = ime.ime_rate_kg_s(omega, mask, area, u * length / downwind)
    assert estimate == pytest.approx(q, rel=0.15)
    mass = ime.integrated_mass_enhancement_kg(omega, mask, area)
    assert mass == pytest.approx(float(np.sum(omega[mask])) * area)
    assert ime.ime_rate_kg_s(omega, np.zeros_like(mask), area, 3.0) == 0.0


@pytest.mark.parametrize("s", [1.0, 3.0, 5.0])
def test_csf_recovers_rate_with_the_true_wind(s: float) -> None:
    q, u = 0.5, 4.0
    omega = plume(q, u, s)
    densities = ime.csf_line_densities_kg_m(
        omega, X, Y, (0.0, 0.0), 0.0, np.array([600.0, 1200.0, 2400.0]), 1150.0
    )
    # class F is ~30 m wide at 600 m: barely resolved by 60 m pixels, hence 2 %
    assert ime.csf_rate_kg_s(densities, u) == pytest.approx(q, rel=0.02)


def test_calibration_table() -> None:
    assert float(ime.effective_wind("EMIT")(5.0)) == pytest.approx(0.36 * 5.0 + 0.66)
    assert float(ime.effective_wind("emit_sron")(5.0)) == pytest.approx(0.36 * 5.0 + 0.43)
    assert float(ime.effective_wind("GHGSAT")(math.e)) == pytest.approx(0.9 + 0.6)
    assert float(ime.effective_wind("SENTINEL2")(4.0)) == pytest.approx(0.33 * 4.0 + 0.45)
    assert float(ime.effective_wind("PRISMA")(4.0)) == pytest.approx(0.34 * 4.0 + 0.44)
    assert float(ime.effective_wind("ENMAP")(4.0)) == pytest.approx(0.34 * 4.0 + 0.44)
    assert float(ime.effective_wind("EMIT", "CSF")(4.0)) == pytest.approx(1.12 * 4.0)
    assert all(cal.citation for cal in ime.U_EFF_CALIBRATIONS.values())
    with pytest.raises(KeyError, match="known"):
        ime.effective_wind("TROPOMI")


def test_monte_carlo_wind_error_propagates_linearly() -> None:
    omega = plume(0.5, 4.0, 3.0)
    mask = omega > 0.03 * omega.max()
    u10, sd = 5.0, 0.5
    result = ime.quantify_ime(
        omega, 0.0, mask, PIXEL_M**2, u10, "EMIT", u10_sd_m_s=sd, n_samples=4000, perturb_mask=False
    )
    u_eff = 0.36 * u10 + 0.66
    assert result.rate_kg_h == pytest.approx(result.rate_kg_h_point, rel=0.01)
    assert result.rate_kg_h_sd == pytest.approx(result.rate_kg_h_point * 0.36 * sd / u_eff, rel=0.05)
    assert result.rate_kg_h_p05 < result.rate_kg_h < result.rate_kg_h_p95
    assert result.method == "IME" and result.instrument == "EMIT" and result.n_samples == 4000
    again = ime.quantify_ime(
        omega, 0.0, mask, PIXEL_M**2, u10, "EMIT", u10_sd_m_s=sd, n_samples=4000, perturb_mask=False
    )
    assert again == result  # deterministic for a seed


def test_monte_carlo_noise_propagates_as_sqrt_n() -> None:
    omega = plume(0.5, 4.0, 3.0)
    mask = omega > 0.03 * omega.max()
    noise = 2e-5  # kg m-2 per pixel
    result = ime.quantify_ime(
        omega,
        noise,
        mask,
        PIXEL_M**2,
        5.0,
        "EMIT",
        u10_sd_m_s=0.0,
        n_samples=1500,
        perturb_mask=False,
        seed=3,
    )
    u_eff = 0.36 * 5.0 + 0.66
    expected_sd_kg_s = u_eff * noise * PIXEL_M**2 * math.sqrt(mask.sum()) / ime.ime_length_m(mask, PIXEL_M**2)
    assert result.rate_kg_h_sd == pytest.approx(expected_sd_kg_s * 3600.0, rel=0.1)


def test_mask_perturbation_and_default_wind_error_widen_the_interval() -> None:
    omega = plume(0.5, 4.0, 3.0)
    mask = omega > 0.03 * omega.max()
    tight = ime.quantify_ime(
        omega, 0.0, mask, PIXEL_M**2, 5.0, "EMIT", u10_sd_m_s=0.0, n_samples=300, perturb_mask=False
    )
    assert tight.rate_kg_h_sd == pytest.approx(0.0, abs=1e-9)
    loose = ime.quantify_ime(omega, 0.0, mask, PIXEL_M**2, 5.0, "EMIT", n_samples=300)  # SRON 1.5 m/s
    assert loose.rate_kg_h_sd > 0.1 * loose.rate_kg_h


def test_mask_perturbation_mixes_eroded_kept_and_dilated_masks_one_two_one(monkeypatch) -> None:
    """No noise, no wind error: each draw is the rate over the eroded, the kept or the dilated mask,
    with probabilities 1/4, 1/2, 1/4; drawing the noise in small blocks gives the same result; an empty
    mask emits nothing."""
    omega = plume(0.5, 4.0, 3.0)
    mask = omega > 0.03 * omega.max()
    area = PIXEL_M**2
    u_eff = float(ime.effective_wind("EMIT")(5.0))
    rates = [ime.ime_rate_kg_s(omega, m, area, u_eff) * 3600.0
             for m in (ndimage.binary_erosion(mask), mask, ndimage.binary_dilation(mask))]
    assert rates[0] != pytest.approx(rates[2], rel=0.05)
    mixed = ime.quantify_ime(omega, 1e-6, mask, area, 5.0, "EMIT", u10_sd_m_s=0.0, n_samples=4000)
    expected = 0.25 * rates[0] + 0.5 * rates[1] + 0.25 * rates[2]
    spread = 0.5 * abs(rates[2] - rates[0])  # sd of a draw is at most this
    assert mixed.rate_kg_h == pytest.approx(expected, abs=4 * spread / math.sqrt(4000))
    assert min(rates) * 0.99 < mixed.rate_kg_h_p05 and mixed.rate_kg_h_p95 < max(rates) * 1.01
    monkeypatch.setattr(ime, "DRAWS_PER_BLOCK_VALUES", 1000)  # a few draws per block
    blocked = ime.quantify_ime(omega, 1e-6, mask, area, 5.0, "EMIT", u10_sd_m_s=0.0, n_samples=4000)
    for field in ("rate_kg_h", "rate_kg_h_sd", "rate_kg_h_p05", "rate_kg_h_p95"):  # the same draws
        assert getattr(blocked, field) == pytest.approx(getattr(mixed, field), rel=1e-12)
    empty = ime.quantify_ime(omega, 1e-6, np.zeros_like(mask), area, 5.0, "EMIT", n_samples=50)
    assert (empty.rate_kg_h, empty.rate_kg_h_p95) == (0.0, 0.0)


def test_quantify_csf_with_emit_calibration() -> None:
    u = 4.0
    omega = plume(0.5, u, 3.0)
    result = ime.quantify_csf(
        omega, 1e-6, X, Y, (0.0, 0.0), 0.0, u / 1.12, "EMIT", np.array([800.0, 1600.0]), 1150.0, n_samples=100
    )
    assert result.rate_kg_h_point == pytest.approx(0.5 * 3600.0, rel=0.01)
    assert result.method == "CSF" and result.rate_kg_h_sd > 0
