"""The non-detection's confidence interval: Feldman-Cousins construction and the least-squares rate."""

from __future__ import annotations

import math
from datetime import datetime

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from attribution_assets.science import inversion as inv
from attribution_assets.science.forward.operators import predict_block
from attribution_assets.science.inversion.confidence import (
    RateMeasurement,
    confidence_interval_kg_h,
    feldman_cousins,
    geometry_draws,
    rate_measurements,
)
from attribution_assets.science.inversion.linear_gaussian import linear_gaussian_posterior
from attribution_assets.science.inversion.simulation import (
    EMIT_PPM_M_PER_KG_M2,
    TROPOMI_PPB_PER_KG_M2,
    grid_block,
)
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import kg_h_to_kg_s

Z90 = stats.norm.ppf(0.9)  # 1.2816: above it the interval leaves zero
Z95 = stats.norm.ppf(0.95)  # 1.6449


def _ratio(value: float, mu: float) -> float:
    """Feldman & Cousins's ordering ``R = p(x | mu) / p(x | mu_best)``, ``mu_best = max(x, 0)``."""
    return stats.norm.pdf(value - mu) / stats.norm.pdf(value - max(value, 0.0))


def _partner(value: float, mu: float) -> float:
    """The other point of equal ``R`` on the far side of ``mu`` (``R`` falls away from ``mu``)."""
    t = math.sqrt(-2.0 * math.log(_ratio(value, mu)))
    if value <= mu:
        return mu + t
    return mu - t if mu - t >= 0.0 else 0.5 * mu - t * t / (2.0 * mu)


@pytest.mark.parametrize("x", [-4.0, -1.0, 0.0, 0.7, Z90, 1.5, 2.5, 6.0])
def test_interval_ends_are_where_the_acceptance_regions_reach_the_measurement(x: float) -> None:
    """Each end of the interval is a rate whose 90 % acceptance region ends at ``x``: the region
    holds 0.9 of ``N(mu, 1)`` between two points of equal likelihood ratio (Feldman & Cousins 1998,
    sec. IV.B)."""
    low, high = feldman_cousins(x)
    assert 0.0 <= low < high
    other = _partner(x, high)
    assert _ratio(other, high) == pytest.approx(_ratio(x, high), rel=1e-6)
    assert stats.norm.cdf(other - high) - stats.norm.cdf(x - high) == pytest.approx(0.9, abs=1e-6)
    if x <= Z90:
        assert low == 0.0, "at most 1.28 sd of signal: an upper limit"
    else:
        other = _partner(x, low)
        assert _ratio(other, low) == pytest.approx(_ratio(x, low), rel=1e-6)
        assert stats.norm.cdf(x - low) - stats.norm.cdf(other - low) == pytest.approx(0.9, abs=1e-6)


def test_analytic_limits() -> None:
    assert feldman_cousins(0.0) == pytest.approx((0.0, Z95), abs=1e-8), "x = 0: the one-sided 95 % point"
    low, high = feldman_cousins(8.0)
    assert (low, high) == pytest.approx((8.0 - Z95, 8.0 + Z95), abs=1e-8), "far from the boundary: central"
    assert feldman_cousins(-3.0)[1] == pytest.approx(0.264, abs=2e-3)  # Feldman & Cousins 1998, Table X
    with pytest.raises(ValueError, match="non-finite"):
        feldman_cousins(math.nan)


@pytest.mark.parametrize("mu", [0.0, 0.3, 1.0, 2.0, 4.0])
def test_the_interval_covers_every_true_rate_ninety_percent_of_the_time(mu: float) -> None:
    xs = mu + np.random.default_rng(int(mu * 10)).standard_normal(4000)
    covered = np.mean([low <= mu <= high for low, high in map(feldman_cousins, xs)])
    assert covered == pytest.approx(0.9, abs=3.5 * math.sqrt(0.09 / 4000))


def test_interval_over_geometries_is_the_median_of_their_bounds() -> None:
    measurements = [RateMeasurement(0.0, 10.0), RateMeasurement(30.0, 10.0), RateMeasurement(0.0, math.inf)]
    low, high = confidence_interval_kg_h(measurements)
    bounds = np.array([feldman_cousins(0.0), feldman_cousins(3.0), (0.0, math.inf)]) * [[10.0], [10.0], [1.0]]
    assert (low, high) == (np.median(bounds[:, 0]), np.median(bounds[:, 1]))
    assert confidence_interval_kg_h([RateMeasurement(0.0, math.inf)]) == (0.0, math.inf), "no plume seen"


def test_geometry_draws_are_the_weighted_mean_and_a_systematic_selection() -> None:
    latent = np.arange(20.0).reshape(1, 10, 2)
    weights = np.zeros((1, 10))
    weights[0, [2, 7]] = [1.0, 3.0]
    rows = geometry_draws(latent, weights, count=4)
    np.testing.assert_allclose(rows[0], 0.25 * latent[0, 2] + 0.75 * latent[0, 7])
    np.testing.assert_array_equal(rows[1:], latent[0, [2, 7, 7, 7]])


WIND = OverpassWind(time=datetime(2024, 6, 1, 18), u_m_s=3.6, v_m_s=1.4, speed_sd_m_s=1.0,
                    direction_sd_rad=0.25, stability_index=3.0, pblh_m=1000.0,
                    surface_pressure_pa=101325.0, source="ERA5")
SOURCE_XY_M = (120.0, -80.0)


@pytest.mark.parametrize("rate_kg_h", [0.0, 400.0])
def test_rate_measurement_is_the_least_squares_rate_with_backgrounds_profiled(rate_kg_h: float) -> None:
    """At the plume geometry of the draws the measurement is the generalised least-squares rate of
    ``y = K (Q, b) + e`` with a flat prior on ``Q`` and the backgrounds' prior (Rodgers 2000, eq. 4.9),
    its sd the posterior sd: the closed form, whatever the rate and sign of the estimate."""
    settings = inv.InversionSettings(
        q_prior="normal", q_mean_kg_h=1000.0, q_sd_kg_h=1000.0, presence=False, fix_wind=True,
        fix_position=True, fix_stability=True, fix_noise_inflation=True, position_prior_xy_m=SOURCE_XY_M,
        structured_error=False, correlated_error=False,
    )
    shapes = [("EMIT", "ppm m", 20, 60.0, 1, EMIT_PPM_M_PER_KG_M2, 600.0, 0),
              ("TROPOMI", "ppb", 5, 5500.0, 16, TROPOMI_PPB_PER_KG_M2, 10.0, 0)]
    rng = np.random.default_rng(5)
    blocks, columns = [], []
    for shape, background in zip(shapes, (50.0, 1900.0), strict=True):
        template = grid_block(*shape)
        unit = np.asarray(predict_block(
            jnp.asarray(template.points_xy_m), jnp.asarray(template.weights),
            jnp.asarray(template.kg_m2_to_obs), jnp.asarray(SOURCE_XY_M), kg_h_to_kg_s(1.0),
            WIND.u_m_s, WIND.v_m_s, WIND.stability_index))
        y = background + rate_kg_h * unit + shape[6] * rng.standard_normal(template.size)
        blocks.append(grid_block(*shape, y=y))
        columns.append(unit)
    data, config = inv.prepare(blocks, [WIND], "CH4", settings)
    sizes = [b.size for b in blocks]
    jacobian = np.zeros((sum(sizes), 3))
    jacobian[:, 0] = np.concatenate(columns)
    jacobian[: sizes[0], 1] = jacobian[sizes[0]:, 2] = 1.0
    exact = linear_gaussian_posterior(
        jacobian, np.concatenate([b.y for b in blocks]), np.r_[0.0, np.asarray(data.bg_mu, float)],
        np.r_[1e16, np.asarray(data.bg_sd, float) ** 2], np.concatenate([b.sigma**2 for b in blocks]))
    noise = np.random.default_rng(1).standard_normal((2, 5, config.dim))
    latent = np.zeros_like(noise)  # geometry at the prior's: the truth, a straight plume from the source
    for group in ("q", "background"):
        latent[..., config.layout()[group]] = noise[..., config.layout()[group]]
    measurements = rate_measurements(latent, np.ones((2, 5)), data, config)
    assert len(measurements) == 1 + 64
    for m in measurements:  # the rate and background coordinates of the draws do not matter
        assert m.q_hat_kg_h == pytest.approx(exact.mean[0], rel=2e-3, abs=2e-3 * exact.sd[0])
        assert m.sd_kg_h == pytest.approx(exact.sd[0], rel=2e-3)


def test_the_inversion_reports_the_interval_of_its_measurements() -> None:
    noise = 300.0 * np.random.default_rng(0).standard_normal(144)
    block = grid_block("EMIT", "ppm m", 12, 60.0, 1, EMIT_PPM_M_PER_KG_M2, 300.0, 0, y=noise)
    settings = inv.InversionSettings(sampler="laplace", laplace_draws=200, num_chains=2, num_samples=100)
    result = inv.invert([block], [WIND], "CH4", settings)
    summary = result.summary()
    assert not summary.detected
    low, high = confidence_interval_kg_h(result.rate_measurements)
    assert (summary.emission_rate_lower_limit_kg_h, summary.emission_rate_upper_limit_kg_h) == (low, high)
    assert 0.0 < high < math.inf


def test_the_flux_factor_widens_the_sd_of_a_positive_estimate_only() -> None:
    assert RateMeasurement(100.0, 30.0, 0.2).source_sd_kg_h == pytest.approx(math.hypot(30.0, 20.0))
    assert RateMeasurement(-100.0, 30.0, 0.2).source_sd_kg_h == 30.0
    low, high = confidence_interval_kg_h([RateMeasurement(1000.0, 100.0, 0.2)])
    sd = math.hypot(100.0, 200.0)
    assert (low, high) == pytest.approx(tuple(sd * v for v in feldman_cousins(1000.0 / sd)))
