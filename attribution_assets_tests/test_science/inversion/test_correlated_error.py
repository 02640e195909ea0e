"""Correlated retrieval error: a conditional autoregression fitted per imager block and used as the
likelihood's error precision."""

from __future__ import annotations

import logging
from dataclasses import replace

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import sparse

from attribution_assets.science import inversion as inv
from attribution_assets.science.forward.operators import ObservationBlock, predict_block
from attribution_assets.science.inversion.correlated_error import (
    MAX_PIXELS,
    MIN_OBSERVATIONS,
    SPECTRAL_FLOOR,
    error_precision,
    fit_correlated_error,
    half_stencil,
    model_correlated_errors,
)
from attribution_assets.science.inversion.problem import with_observations
from attribution_assets.science.inversion.simulation import grid_block, met_prior
from attribution_assets.science.inversion.structured_error import block_scale, projections, templates
from attribution_assets.science.units import kg_h_to_kg_s
from attribution_assets.science.validation.scenes import set_scene
from attribution_assets.science.validation.surfaces import correlated_field

PIXELS = 40
NOISE = 400.0
K_EMIT = 1.0 / 7.16e-7
WIND = met_prior(3.0, 1.0)


def _block(errors: np.ndarray, q_kg_h: float = 0.0, pixels: int = PIXELS) -> ObservationBlock:
    """An EMIT-like ``pixels`` x ``pixels`` block (60 m, ``NOISE`` ppm m reported) with ``errors``
    (ppm m, raveled) and the plume of a ``q_kg_h`` source at the origin in the met wind."""
    block = grid_block("EMIT", "ppm m", pixels, 60.0, 1, K_EMIT, NOISE, 0)
    plume = np.asarray(predict_block(
        jnp.asarray(block.points_xy_m), jnp.asarray(block.weights), jnp.asarray(block.kg_m2_to_obs),
        jnp.zeros(2), kg_h_to_kg_s(q_kg_h), WIND.u_m_s, WIND.v_m_s, WIND.stability_index), float)
    return replace(block, y=plume + errors)


def _car_precision(pixels: int, beta: dict[tuple[int, int], float], tau2: float) -> np.ndarray:
    """Dense precision ``(I - B) / tau^2`` of a free-boundary conditional autoregression on a square
    grid (row-major), coefficient ``beta[h]`` for the pair ``+h, -h``."""
    n = pixels * pixels
    q = np.eye(n)
    rows, cols = np.divmod(np.arange(n), pixels)
    for (dr, dc), b in beta.items():
        r2, c2 = rows + dr, cols + dc
        ok = (r2 >= 0) & (r2 < pixels) & (c2 >= 0) & (c2 < pixels)
        i, j = np.flatnonzero(ok), (r2 * pixels + c2)[ok]
        q[i, j] -= b
        q[j, i] -= b
    return q / tau2


def _clutter(rng: np.random.Generator, sd: float, corr_px: float, pixels: int = PIXELS) -> np.ndarray:
    """White noise of the reported sd plus a Gaussian-smoothed clutter field of sd ``sd`` (ppm m)."""
    field = correlated_field(rng, (pixels, pixels), corr_px).ravel()
    return NOISE * rng.standard_normal(pixels * pixels) + sd * field


def test_the_half_stencil_holds_each_lag_pair_once() -> None:
    lags = half_stencil(2)
    assert lags.shape == (12, 2)
    as_set = {tuple(h) for h in lags}
    assert not as_set & {(-dr, -dc) for dr, dc in as_set}
    assert max(np.abs(lags).max(axis=1)) == 2


@pytest.mark.parametrize("seed", range(3))
def test_the_fit_recovers_a_known_conditional_autoregression(seed: int) -> None:
    """Errors drawn exactly from a CAR (beta 0.2 on the four nearest neighbours, tau 1.2 in units of
    the reported sd): the pseudo-likelihood regression recovers its coefficients and conditional
    variance, and the fitted precision is the CAR's."""
    truth, pixels = {(0, 1): 0.2, (1, 0): 0.2}, 60
    q = _car_precision(pixels, truth, 1.44)
    chol = np.linalg.cholesky(q)
    e = np.linalg.solve(chol.T, np.random.default_rng(seed).standard_normal(pixels * pixels))
    block = _block(NOISE * e, pixels=pixels)
    fit = fit_correlated_error(block)
    assert fit is not None and fit.used and fit.p_value < 1e-10
    expected = np.array([truth.get(tuple(h), 0.0) for h in fit.lags])
    np.testing.assert_allclose(fit.beta, expected, atol=0.05)  # about 4 standard errors
    assert fit.tau2 == pytest.approx(1.44, rel=0.1)
    dense = error_precision(block, fit).toarray() * NOISE**2
    np.testing.assert_allclose(dense, dense.T)
    nearest = _car_precision(pixels, {tuple(h): b for h, b in zip(fit.lags, fit.beta, strict=True)}, fit.tau2)
    np.testing.assert_allclose(dense, nearest, atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_white_noise_of_the_reported_sd_keeps_independent_errors(seed: int) -> None:
    block = _block(NOISE * np.random.default_rng(seed).standard_normal(PIXELS * PIXELS))
    fit = fit_correlated_error(block)
    assert fit is not None and not fit.used
    assert fit.variance == pytest.approx(1.0, abs=0.1) and np.max(np.abs(fit.beta)) < 0.05
    blocks, fits = model_correlated_errors([block])
    assert blocks[0].error_precision is None and fits[0] is not None and fits[0].p_value == fit.p_value


def test_blocks_without_grid_or_with_too_few_pixels_get_no_field() -> None:
    block = _block(NOISE * np.random.default_rng(0).standard_normal(PIXELS * PIXELS))
    assert fit_correlated_error(replace(block, grid_index=None)) is None
    small = _block(NOISE * np.random.default_rng(0).standard_normal(15 * 15), pixels=15)
    assert MIN_OBSERVATIONS > (15 - 4) ** 2 and fit_correlated_error(small) is None
    side = int(np.ceil(np.sqrt(MAX_PIXELS + 1)))
    large = _block(NOISE * np.random.default_rng(0).standard_normal(side * side), pixels=side)
    assert fit_correlated_error(large) is None


def test_a_smooth_field_gets_a_positive_definite_precision() -> None:
    """A field smoothed over 4 pixels without white noise asks for coefficients at the edge of positive
    definiteness; they are shrunk so that the spectrum of ``I - B`` stays above ``SPECTRAL_FLOOR``."""
    rng = np.random.default_rng(3)
    block = _block(NOISE * correlated_field(rng, (PIXELS, PIXELS), 4.0).ravel())
    fit = fit_correlated_error(block)
    assert fit is not None and fit.used
    normalised = error_precision(block, fit).toarray() * NOISE**2 * fit.tau2
    assert np.linalg.eigvalsh(normalised).min() >= SPECTRAL_FLOOR - 1e-9


def _template(block: ObservationBlock) -> np.ndarray:
    """A 300 kg/h plume's enhancement per kg s-1 from 200 m upwind of the scene centre."""
    return np.asarray(predict_block(
        jnp.asarray(block.points_xy_m), jnp.asarray(block.weights), jnp.asarray(block.kg_m2_to_obs),
        jnp.array([-200.0, -100.0]), 1.0, WIND.u_m_s, WIND.v_m_s, WIND.stability_index), float)


def test_the_fitted_precision_is_calibrated_on_clutter_of_another_shape() -> None:
    """Clutter that is a Gaussian-smoothed field (not a CAR) of 200 ppm m over 2 pixels on 400 ppm m
    of white noise: the matched projection of the errors on a plume has sd 1 under the fitted
    precision (about 1.9 under independent errors of the reported sd), and the fitted precision's
    information on the plume's rate is within 25 % of the true covariance's (generalised least
    squares with the clutter's own covariance)."""
    rng = np.random.default_rng(11)
    t = _template(_block(np.zeros(PIXELS * PIXELS)))
    z_fit, z_diag, ratio = [], [], []
    rows, cols = np.divmod(np.arange(PIXELS * PIXELS), PIXELS)
    lag2 = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2
    true_cov = NOISE**2 * np.eye(t.size) + 200.0**2 * np.exp(-lag2 / (4.0 * 2.0**2))
    true_info = t @ np.linalg.solve(true_cov, t)
    for _ in range(40):
        block = _block(_clutter(rng, 200.0, 2.0))
        fit = fit_correlated_error(block)
        assert fit is not None and fit.used
        q = error_precision(block, fit)
        resid = np.asarray(block.y) - np.mean(block.y)
        info = t @ (q @ t)
        z_fit.append(t @ (q @ resid) / np.sqrt(info))
        z_diag.append(t @ resid / NOISE / np.sqrt(t @ t))
        ratio.append(info / true_info)
    assert 0.75 < np.std(z_fit) < 1.3
    assert np.std(z_diag) > 1.5
    assert 0.75 < np.median(ratio) < 1.25


def test_the_likelihood_is_the_gaussian_density_with_the_block_precision() -> None:
    """With a correlated error precision, the model's potentials are ``-log`` of the Gaussian density
    of the residuals with precision ``Q / lambda^2`` (no source) and its product with the plume's
    Bayes factor (source), as computed from the dense matrix; screening the observations the plume
    does not reach leaves the source potential unchanged."""
    rng = np.random.default_rng(5)
    block = _block(_clutter(rng, 250.0, 1.5, pixels=16) + 1000.0, q_kg_h=2000.0, pixels=16)
    beta = {(0, 1): 0.15, (1, 0): 0.1, (1, 1): 0.05}
    dense = _car_precision(16, beta, 1.3) / NOISE**2
    block = replace(block, error_precision=sparse.csr_matrix(dense))
    settings = inv.InversionSettings(structured_error=False)
    data, config = inv.prepare([block], [WIND], "CH4", settings)
    z = 0.3 * rng.standard_normal(config.dim)
    phys = inv.unpack(z, data, config)
    model = np.asarray(inv.predict_groups(jnp.asarray(z, jnp.float32), data, config)[0], float)[: block.size]
    offset = float(data.bg_sd[0]) * z[config.layout()["background"]][0]
    resid = np.asarray(block.y) - float(data.bg_mu[0]) - offset
    infl2 = float(phys["noise_inflation"][0]) ** 2
    ll0 = -block.size * 0.5 * np.log(infl2) - 0.5 * resid @ dense @ resid / infl2
    delta = (model @ dense @ resid - 0.5 * model @ dense @ model) / infl2
    prior = 0.5 * float(z @ z)
    absent = float(inv.potential(jnp.asarray(z, jnp.float32), data, config, "absent"))
    present = float(inv.potential(jnp.asarray(z, jnp.float32), data, config, "present"))
    assert absent == pytest.approx(prior - ll0, rel=1e-4)
    assert present - absent == pytest.approx(-delta, rel=1e-3, abs=1e-2)
    reach = np.abs(model) > 1e-6 * np.abs(model).max()
    assert reach.sum() < block.size
    screened = with_observations(data, [block], [reach])
    assert float(inv.potential(jnp.asarray(z, jnp.float32), screened, config, "present")) == pytest.approx(
        present, rel=1e-5)


def test_the_clutter_of_a_validation_scene_leaves_no_structured_error_under_the_field() -> None:
    """EMIT scene of the misspecified validation set (event 72 of 300, seed 2: 200 ppm m-class clutter
    over 2.4 pixels): the structured-error scale is 3-4 with independent errors and at most 1.3
    (full likelihood weight) under the fitted field."""
    scene = set_scene(300, 2, 72)
    block = scene.blocks[scene.instruments.index("EMIT")]
    wind = scene.winds[block.overpass]
    (fitted,), (fit,) = model_correlated_errors([block])
    assert fit is not None and fit.used and fitted.error_precision is not None

    def scale(b: ObservationBlock) -> float:
        return block_scale(projections(b, templates(b, wind, np.zeros(2), 300.0, np.random.default_rng(0))))

    assert scale(block) > 2.5
    assert scale(fitted) <= 1.3


def test_invert_logs_and_returns_the_fits(caplog) -> None:
    rng = np.random.default_rng(2)
    clutter, white = _block(_clutter(rng, 200.0, 2.0)), _block(NOISE * rng.standard_normal(PIXELS**2))
    fast = inv.InversionSettings(sampler="laplace")
    with caplog.at_level(logging.INFO):
        result = inv.invert([clutter], [WIND], "CH4", fast)
    assert result.correlated_error_fits[0] is not None and result.correlated_error_fits[0].used
    assert "EMIT: correlated error" in caplog.text and "used in the likelihood" in caplog.text
    off = inv.invert([white], [WIND], "CH4", replace(fast, correlated_error=False))
    assert off.correlated_error_fits == (None,)
