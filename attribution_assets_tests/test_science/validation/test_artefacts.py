"""Surfaces and retrieval artefacts of the validation scenes: documented form and magnitude."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attribution_assets.science.validation import artefacts
from attribution_assets.science.validation.surfaces import albedo_field, correlated_field


def test_correlated_field_is_standardised_with_the_kernel_correlation() -> None:
    corr_px = 3.0
    field = correlated_field(np.random.default_rng(0), (400, 400), corr_px)
    assert field.mean() == pytest.approx(0.0, abs=1e-12)
    assert field.std() == pytest.approx(1.0)
    for lag in (1, 3, 6):
        r = np.corrcoef(field[:, :-lag].ravel(), field[:, lag:].ravel())[0, 1]
        assert r == pytest.approx(math.exp(-(lag**2) / (4 * corr_px**2)), abs=0.05)
    # no wrap-around: opposite edges are independent (with wrap-around they would correlate at 0.97)
    rng = np.random.default_rng(1)
    edges = [correlated_field(rng, (100, 100), corr_px) for _ in range(30)]
    assert abs(np.mean([np.corrcoef(f[:, 0], f[:, -1])[0, 1] for f in edges])) < 0.15


def test_albedo_field_has_its_mean_and_sd() -> None:
    albedo = albedo_field(np.random.default_rng(1), (300, 300), 0.25, 0.05, 2.0)
    assert albedo.mean() == pytest.approx(0.25, abs=1e-3)
    assert albedo.std() == pytest.approx(0.05, rel=0.02)


def test_tropomi_artefact_is_an_albedo_bias_plus_a_plane() -> None:
    rng = np.random.default_rng(2)
    x, y = (a.ravel() for a in np.meshgrid(np.arange(7) * 5500.0, np.arange(7) * 7000.0))
    for _ in range(20):
        art = artefacts.tropomi_artefact(rng, (7, 7), x, y)
        p = art.parameters
        assert artefacts.TROPOMI_ALBEDO_SLOPE_PPB[0] <= abs(p["albedo_slope_ppb"]) <= 60.0
        assert 2.0 <= p["gradient_ppb_per_100km"] <= 10.0
        design = np.column_stack([art.surface - art.surface.mean(), x * 1e-5, y * 1e-5, np.ones(x.size)])
        coef, *_ = np.linalg.lstsq(design, art.values, rcond=None)
        g, d = p["gradient_ppb_per_100km"], p["gradient_direction_rad"]
        np.testing.assert_allclose(coef[:3], [p["albedo_slope_ppb"], g * math.cos(d), g * math.sin(d)],
                                   atol=1e-9)
        assert abs(art.values.mean()) < 1e-9


def test_ghgsat_artefact_is_an_offset_plus_an_albedo_bias() -> None:
    rng = np.random.default_rng(3)
    offsets = []
    for _ in range(200):
        art = artefacts.ghgsat_artefact(rng, (40, 40))
        p = art.parameters
        np.testing.assert_allclose(art.values, p["offset_ppb"] + p["albedo_slope_ppb"]
                                   * (art.surface - art.surface.mean()), atol=1e-9)
        assert 100.0 <= abs(p["albedo_slope_ppb"]) <= 300.0
        assert art.surface.std() == pytest.approx(artefacts.GHGSAT_ALBEDO_SD, rel=0.05)
        offsets.append(p["offset_ppb"])
    assert np.std(offsets) == pytest.approx(artefacts.GHGSAT_OFFSET_SD_PPB, rel=0.15)


def test_emit_clutter_has_its_sd_and_its_correlation_with_the_surface() -> None:
    rng = np.random.default_rng(4)
    for _ in range(5):
        art = artefacts.emit_clutter(rng, (300, 300))
        p = art.parameters
        assert 80.0 <= p["clutter_sd_ppm_m"] <= 200.0 and 0.5 <= p["surface_correlation"] <= 0.9
        assert art.values.std() == pytest.approx(p["clutter_sd_ppm_m"], rel=0.08)
        assert np.corrcoef(art.values, art.surface)[0, 1] == pytest.approx(p["surface_correlation"], abs=0.05)
        # spatially correlated: neighbours agree far more than white noise would
        grid = art.values.reshape(300, 300)
        assert np.corrcoef(grid[:, :-1].ravel(), grid[:, 1:].ravel())[0, 1] > 0.5


def test_oco2_artefact_is_a_footprint_bias_plus_a_ramp() -> None:
    rng = np.random.default_rng(5)
    footprint = np.tile(np.arange(8), 24)
    along = np.repeat(np.arange(24) * 2250.0, 8)
    biases = []
    for _ in range(100):
        art = artefacts.oco2_artefact(rng, footprint, along)
        p = art.parameters
        b = np.array([p[f"footprint_bias_{i}_ppm"] for i in range(8)])
        ramp = p["gradient_ppm_per_km"] * along / 1000.0
        np.testing.assert_allclose(art.values, b[footprint] + ramp - ramp.mean(), atol=1e-12)
        biases.append(b)
    assert np.std(biases) == pytest.approx(artefacts.OCO2_FOOTPRINT_BIAS_SD_PPM, rel=0.1)
