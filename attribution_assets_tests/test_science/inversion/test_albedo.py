"""Albedo artefacts: the weighted least-squares slope on the retrieved albedo, removed per block."""

from __future__ import annotations

import logging
from dataclasses import replace

import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from attribution_assets.pipeline.forward import build_blocks
from attribution_assets.readers.ghgsat import read_ghgsat_l2
from attribution_assets.science import inversion as inv
from attribution_assets.science.forward.operators import ObservationBlock, predict_block
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.inversion.albedo import (
    MIN_OBSERVATIONS,
    fit_albedo_slope,
    remove_albedo_artefact,
    remove_albedo_artefacts,
)
from attribution_assets.science.inversion.simulation import grid_block, met_prior
from attribution_assets.science.inversion.structured_error import block_weights
from attribution_assets.science.units import kg_h_to_kg_s, kg_m2_per_ppb
from attribution_assets.science.validation.surfaces import albedo_field
from attribution_assets_tests.test_bad_inputs.corpus import PRODUCTS, good_copy

NOISE_PPB = 30.0
PIXELS = 40
WIND = met_prior(3.0, 1.8)
PPB_PER_KG_M2 = 1.0 / float(kg_m2_per_ppb(101325.0, "CH4"))
FAST = inv.InversionSettings(num_chains=2, num_warmup=300, num_samples=300, escalate=False)


def _ghgsat(seed: int, slope_ppb: float, q_kg_h: float = 0.0, albedo: bool = True) -> ObservationBlock:
    """A 40 x 40 GHGSat-like block (25 m pixels, 30 ppb noise) over an albedo field of 0.20 +- 0.05
    correlated over 3 pixels, with an artefact ``slope_ppb`` x (albedo - mean) and the Gaussian plume of
    a ``q_kg_h`` source at the origin in the met wind; it reports the albedo when ``albedo``."""
    rng = np.random.default_rng(seed)
    field = albedo_field(rng, (PIXELS, PIXELS), 0.20, 0.05, 3.0).ravel()
    block = grid_block("GHGSAT", "ppb", PIXELS, 25.0, 1, PPB_PER_KG_M2, NOISE_PPB, 0)
    plume = np.asarray(predict_block(
        jnp.asarray(block.points_xy_m), jnp.asarray(block.weights), jnp.asarray(block.kg_m2_to_obs),
        jnp.zeros(2), kg_h_to_kg_s(q_kg_h), WIND.u_m_s, WIND.v_m_s, WIND.stability_index), float)
    y = 1900.0 + slope_ppb * (field - field.mean()) + plume + NOISE_PPB * rng.standard_normal(field.size)
    return replace(block, y=y, albedo=field if albedo else None)


@pytest.mark.parametrize("seed", range(4))
def test_the_fitted_slope_is_the_artefact_within_its_standard_error(seed: int) -> None:
    """Weighted least squares: the slope is unbiased with standard error ``s / sqrt(sum (a - a_bar)^2)``
    for equal weights, and the corrected block is the background plus white noise of the reported sd."""
    block = _ghgsat(seed, 250.0)
    fit = fit_albedo_slope(block)
    assert fit is not None and block.size - 5 <= fit.n <= block.size and fit.instrument == "GHGSAT"
    a = np.asarray(block.albedo)
    assert fit.slope_se == pytest.approx(NOISE_PPB / np.sqrt(np.sum((a - a.mean()) ** 2)), rel=0.05)
    assert abs(fit.slope - 250.0) < 3.0 * fit.slope_se
    corrected, _ = remove_albedo_artefact(block)
    resid = corrected.y - corrected.y.mean()
    assert np.std(resid) == pytest.approx(NOISE_PPB, rel=0.06)
    assert fit.describe().startswith(f"GHGSAT: albedo artefact {fit.slope:.1f} +- {fit.slope_se:.1f} ppb per")


def test_a_plume_survives_the_correction() -> None:
    """A 1 t/h plume keeps its mass: the removed field is the artefact, not the plume (the plume's
    projection on the albedo field is about 1/n of it)."""
    with_plume = _ghgsat(7, 250.0, 1000.0)
    without = _ghgsat(7, 250.0, 0.0)
    plume = with_plume.y - without.y
    corrected_with, _ = remove_albedo_artefact(with_plume)
    corrected_without, _ = remove_albedo_artefact(without)
    kept = corrected_with.y - corrected_without.y
    assert plume.max() > 10 * NOISE_PPB
    assert np.sum(kept) == pytest.approx(np.sum(plume), rel=0.02)


def test_blocks_without_a_usable_albedo_are_unchanged() -> None:
    plain = _ghgsat(1, 250.0, albedo=False)
    assert remove_albedo_artefact(plain) == (plain, None)
    flat = replace(plain, albedo=np.full(plain.size, 0.2))
    assert fit_albedo_slope(flat) is None
    small = grid_block("GHGSAT", "ppb", 12, 25.0, 1, PPB_PER_KG_M2, NOISE_PPB, 0)
    assert small.size < MIN_OBSERVATIONS
    small = replace(small, albedo=np.linspace(0.1, 0.3, small.size))
    assert fit_albedo_slope(small) is None
    blocks, fits = remove_albedo_artefacts([plain, _ghgsat(2, 250.0)])
    assert blocks[0] is plain and fits[0] is None and fits[1] is not None


def test_observations_without_an_albedo_keep_their_value() -> None:
    block = _ghgsat(3, 250.0)
    albedo = np.asarray(block.albedo).copy()
    albedo[:50] = np.nan
    corrected, fit = remove_albedo_artefact(replace(block, albedo=albedo))
    assert fit is not None and fit.n <= block.size - 50
    np.testing.assert_array_equal(corrected.y[:50], block.y[:50])
    assert not np.array_equal(corrected.y[50:], block.y[50:])


def test_an_albedo_artefact_is_tempered_before_and_not_after_its_removal() -> None:
    """Seen as correlated error the artefact costs the block most of its likelihood weight; regressed
    on the albedo it leaves white noise, which keeps the full likelihood."""
    block = _ghgsat(4, 250.0)
    corrected, _ = remove_albedo_artefact(block)
    rng = np.random.default_rng
    before = block_weights([block], [WIND], np.zeros(2), 300.0, rng(0))[0]
    after = block_weights([corrected], [WIND], np.zeros(2), 300.0, rng(0))[0]
    assert before < 0.5
    assert after == 1.0


@pytest.mark.slow
def test_regressing_the_albedo_recovers_a_weak_source(caplog: pytest.LogCaptureFixture) -> None:
    """A 150 kg/h source under a 250 ppb-per-unit-albedo artefact: tempered for the artefact, the
    block cannot tell the source from none; with the artefact regressed on the albedo, it can. Without
    a source, the corrected block reports none."""
    weak = _ghgsat(11, 250.0, 150.0)
    # against the tempering alone: the correlated-error field also models the artefact in part
    tempered = inv.invert([weak], [WIND], "CH4", replace(FAST, albedo_regression=False,
                                                         correlated_error=False)).summary()
    with caplog.at_level(logging.INFO):
        result = inv.invert([weak], [WIND], "CH4", FAST)
    regressed = result.summary()
    assert "GHGSAT: albedo artefact" in caplog.text
    (fit,) = result.albedo_fits
    assert fit is not None and abs(fit.slope - 250.0) < 3.0 * fit.slope_se
    (seen,) = result.as_inverted([weak])
    np.testing.assert_allclose(seen.y, remove_albedo_artefact(weak)[0].y)
    assert regressed.p_source > 0.95 and regressed.p_source > tempered.p_source + 0.3
    assert regressed.emission_rate_kg_h_p05 < 150.0 < regressed.emission_rate_kg_h_p95
    null = inv.invert([_ghgsat(12, 250.0)], [WIND], "CH4", FAST).summary()
    assert not null.detected


def test_a_ghgsat_file_with_an_albedo_artefact_gives_its_slope_through_the_pipeline(tmp_path) -> None:
    """The bundled Permian GHGSat scene with a 200 ppb-per-unit-albedo artefact and its albedo written
    into the file: read, cropped and built into a block as the forward stage does, the block carries
    the albedo and the fitted slope is the artefact's."""
    path = good_copy(PRODUCTS["GHGSAT"], tmp_path)
    with h5py.File(path, "r+") as h5:
        shape = h5["data/xch4"].shape
        albedo = albedo_field(np.random.default_rng(5), shape, 0.20, 0.05, 3.0).astype(np.float32)
        h5["data/xch4"][...] = h5["data/xch4"][()] + 200.0 * (albedo - albedo.mean())
        h5.create_dataset("data/surface_albedo", data=albedo).attrs["units"] = "1"
    ds = read_ghgsat_l2(path, bbox=(-103.66, 31.86, -103.56, 31.96))
    wind = met_prior(3.0, 1.0)
    (block,) = build_blocks(LocalFrame(-103.61, 31.9095), [wind], [path.stem], {}, {path.stem: ds}, {}, {})
    assert block.instrument == "GHGSAT" and block.albedo is not None and block.size > MIN_OBSERVATIONS
    fit = fit_albedo_slope(block)
    assert fit is not None and abs(fit.slope - 200.0) < 4.0 * fit.slope_se
