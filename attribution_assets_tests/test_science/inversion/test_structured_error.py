"""Structured retrieval error: white noise keeps the full likelihood, a smooth artefact is tempered."""

from __future__ import annotations

from dataclasses import replace

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage, sparse

from attribution_assets.science import inversion as inv
from attribution_assets.science.forward.operators import ObservationBlock, predict_block
from attribution_assets.science.inversion.simulation import EMIT_PPM_M_PER_KG_M2, grid_block, met_prior
from attribution_assets.science.inversion.structured_error import (
    block_weights,
    projections,
    quiet_observations,
    templates,
)
from attribution_assets.science.units import kg_h_to_kg_s

NOISE = 300.0  # ppm m
WIND = met_prior(3.0, 1.8)
FAST = inv.InversionSettings(num_chains=2, num_warmup=300, num_samples=300, escalate=False)


def _emit(seed: int, artefact_sd: float) -> ObservationBlock:
    """A 40 x 40 EMIT-like block without a source: white noise of sd ``NOISE`` plus a smooth
    artefact (Gaussian-filtered noise, correlation ~4 pixels) of sd ``artefact_sd`` x ``NOISE``."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((40, 40)), 4.0, mode="wrap")
    y = NOISE * rng.standard_normal(1600) + artefact_sd * NOISE * (field / field.std()).ravel()
    return grid_block("EMIT", "ppm m", 40, 60.0, 1, EMIT_PPM_M_PER_KG_M2, NOISE, 0, y=y)


def _with_plume(block: ObservationBlock, q_kg_h: float) -> ObservationBlock:
    """``block`` plus the Gaussian plume of a ``q_kg_h`` source at the origin in the met wind."""
    plume = np.asarray(predict_block(
        jnp.asarray(block.points_xy_m), jnp.asarray(block.weights), jnp.asarray(block.kg_m2_to_obs),
        jnp.zeros(2), kg_h_to_kg_s(q_kg_h), WIND.u_m_s, WIND.v_m_s, WIND.stability_index), float)
    return grid_block("EMIT", "ppm m", 40, 60.0, 1, EMIT_PPM_M_PER_KG_M2, NOISE, 0, y=block.y + plume)


def _weight(block: ObservationBlock, seed: int = 0) -> float:
    return float(block_weights([block], [WIND], np.zeros(2), 300.0, np.random.default_rng(seed))[0])


def test_projections_of_white_noise_are_standard_normal() -> None:
    """Under independent errors with the reported sigma every matched projection is N(0, 1)."""
    block = _emit(0, 0.0)
    plumes = templates(block, WIND, np.zeros(2), 300.0, np.random.default_rng(1))
    z = np.concatenate([projections(_emit(s, 0.0), plumes) for s in range(20)])
    z = z[np.isfinite(z)]
    assert z.size > 1000
    assert np.mean(z) == pytest.approx(0.0, abs=0.1)
    assert np.std(z) == pytest.approx(1.0, abs=0.08)


@pytest.mark.parametrize("correlated", [False, True])
def test_projections_are_the_matched_filter_over_the_quiet_observations(correlated: bool) -> None:
    """The expanded centring equals the module docstring's formula written out: the precision sliced
    to the quiet observations, the templates centred under it. With a bright plume (some
    observations not quiet) and with independent or correlated errors."""
    block = _with_plume(_emit(3, 0.3), 3000.0)
    if correlated:
        n = block.size
        coupling = sparse.diags([np.full(n - 1, -0.3), np.full(n, 1.0), np.full(n - 1, -0.3)], [-1, 0, 1])
        block = replace(block, error_precision=(coupling / NOISE**2).tocsr())
    plumes = templates(block, WIND, np.zeros(2), 300.0, np.random.default_rng(2))
    quiet = quiet_observations(block)
    assert 0 < (~quiet).sum() < quiet.size
    precision = block.precision()[quiet][:, quiet].toarray()
    resid = (block.y - np.median(block.y))[quiet]
    centred = plumes[:, quiet] - ((plumes[:, quiet] @ precision.sum(axis=1)) / precision.sum())[:, None]
    norm = np.sqrt(np.einsum("kn,nm,km->k", centred, precision, centred))
    expected = np.where(norm >= 1.0, centred @ precision @ resid / norm, np.nan)
    np.testing.assert_allclose(projections(block, plumes), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_white_noise_keeps_the_full_likelihood(seed: int) -> None:
    assert _weight(_emit(seed, 0.0), seed) == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_smooth_artefact_is_tempered(seed: int) -> None:
    """An artefact half the noise sd, correlated over ~4 pixels, projects onto plume templates
    several times more strongly than white noise."""
    assert _weight(_emit(seed, 0.5), seed) < 0.5


@pytest.mark.slow
def test_tempering_turns_an_artefact_false_alarm_into_a_non_detection() -> None:
    block = _emit(5, 0.5)
    # the tempering alone: the correlated-error field would model this artefact instead
    independent = replace(FAST, correlated_error=False)
    plain = inv.invert([block], [WIND], "CH4", replace(independent, structured_error=False)).summary()
    tempered = inv.invert([block], [WIND], "CH4", independent).summary()
    assert plain.detected and plain.p_source > 0.9  # the artefact read as a plume
    assert not tempered.detected and tempered.p_source < 0.5


@pytest.mark.parametrize("seed", range(3))
def test_a_strong_plume_is_not_read_as_retrieval_error(seed: int) -> None:
    """A 10 t/h plume (hundreds of noise sds at its core) projects onto most templates; its bright
    pixels are left out of the measure, so white noise keeps the full likelihood and an artefact
    keeps about the scale it has without the plume."""
    strong = _with_plume(_emit(seed, 0.0), 10_000.0)
    quiet = quiet_observations(strong)
    assert 10 < np.sum(~quiet) < 400  # the plume's core, not the scene
    assert _weight(strong, seed) == 1.0
    artefact = _emit(seed, 0.5)
    scale, scale_with_plume = (_weight(b, seed) ** -0.5 for b in (artefact, _with_plume(artefact, 10_000.0)))
    assert scale > 2.0
    assert scale_with_plume == pytest.approx(scale, rel=0.25)
