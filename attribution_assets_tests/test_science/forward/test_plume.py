"""Gaussian plume: mass conservation, Briggs dispersion table, JAX transformations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attribution_assets.science.forward.plume import (
    briggs_sigma_y_m,
    briggs_sigma_z_m,
    column_enhancement_kg_m2,
    stability_index,
    weighted_column_kg_m2,
)

# Briggs (1973) open-country values, evaluated by hand from sigma = a x (1 + b x)^p.
BRIGGS_SIGMA_Y = {
    100.0: [21.8908, 15.9206, 10.9454, 7.9603, 5.9702, 3.9801],
    1000.0: [209.7618, 152.554, 104.8809, 76.277, 57.2078, 38.1385],
    10000.0: [1555.6349, 1131.3708, 777.8175, 565.6854, 424.2641, 282.8427],
}
BRIGGS_SIGMA_Z = {
    100.0: [20.0, 12.0, 7.9212, 5.595, 2.9126, 1.5534],
    1000.0: [200.0, 120.0, 73.0297, 37.9473, 23.0769, 12.3077],
    10000.0: [2000.0, 1200.0, 461.8802, 150.0, 75.0, 40.0],
}


@pytest.mark.parametrize("x_m", [100.0, 1000.0, 10000.0])
@pytest.mark.parametrize("letter", list("ABCDEF"))
def test_briggs_sigma_matches_table(x_m: float, letter: str) -> None:
    s = stability_index(letter)
    k = "ABCDEF".index(letter)
    assert float(briggs_sigma_y_m(x_m, s)) == pytest.approx(BRIGGS_SIGMA_Y[x_m][k], rel=1e-4)
    assert float(briggs_sigma_z_m(x_m, s)) == pytest.approx(BRIGGS_SIGMA_Z[x_m][k], rel=1e-4)


def test_half_index_interpolates_between_classes() -> None:
    mid = float(briggs_sigma_y_m(1000.0, 2.5))
    assert mid == pytest.approx(0.5 * (104.8809 + 76.277), rel=1e-4)


@pytest.mark.parametrize("x_m", [300.0, 1000.0, 3000.0, 8000.0])
@pytest.mark.parametrize("s", [0.0, 1.5, 3.0, 5.0])
def test_mass_conservation_across_plume(x_m: float, s: float) -> None:
    """u * integral(Omega dy) = Q at every downwind distance (wind along +x)."""
    q, u = 2.5, 4.0
    sigma = float(briggs_sigma_y_m(x_m, s))
    half = 12.0 * max(sigma, 15.0)
    y = np.linspace(-half, half, 20001)
    points = np.stack([np.full_like(y, x_m), y], axis=-1)
    omega = np.asarray(column_enhancement_kg_m2(points, jnp.zeros(2), q, u, 0.0, s), np.float64)
    flux = u * np.sum(omega) * (y[1] - y[0])
    assert flux == pytest.approx(q, rel=1e-3)


def test_mass_conservation_for_any_wind_direction() -> None:
    q, speed, x_m, s = 1.0, 6.0, 2000.0, 3.0
    theta = np.deg2rad(127.0)
    along = np.array([np.cos(theta), np.sin(theta)])
    across = np.array([-along[1], along[0]])
    t = np.linspace(-2000.0, 2000.0, 8001)
    points = x_m * along[None, :] + t[:, None] * across[None, :]
    omega = np.asarray(
        column_enhancement_kg_m2(points, jnp.zeros(2), q, speed * along[0], speed * along[1], s)
    )
    assert speed * np.sum(omega, dtype=np.float64) * (t[1] - t[0]) == pytest.approx(q, rel=1e-3)


def test_upwind_is_negligible_and_peak_on_axis() -> None:
    points = jnp.array([[-500.0, 0.0], [500.0, 0.0], [500.0, 100.0]])
    omega = np.asarray(column_enhancement_kg_m2(points, jnp.zeros(2), 1.0, 5.0, 0.0, 3.0))
    assert omega[0] < 1e-9 * omega[1]
    assert omega[1] > omega[2] > 0


def _scalar_model(params: jax.Array, points: jax.Array) -> jax.Array:
    q, sx, sy, u, v, s = params
    return jnp.sum(column_enhancement_kg_m2(points, jnp.stack([sx, sy]), q, u, v, s))


def test_jit_vmap_grad_are_finite_in_every_parameter() -> None:
    grid = jnp.stack(jnp.meshgrid(jnp.linspace(-200.0, 3000.0, 30), jnp.linspace(-800.0, 800.0, 20)), -1)
    points = grid.reshape(-1, 2)
    params = jnp.array([1.0, 10.0, -20.0, 3.0, 1.0, 2.7])
    eager = _scalar_model(params, points)
    jitted = jax.jit(_scalar_model)(params, points)
    assert float(jitted) == pytest.approx(float(eager), rel=1e-5)

    per_point = jax.vmap(lambda p: column_enhancement_kg_m2(p, jnp.array([10.0, -20.0]), 1.0, 3.0, 1.0, 2.7))(
        points
    )
    np.testing.assert_allclose(
        np.asarray(per_point),
        np.asarray(column_enhancement_kg_m2(points, jnp.array([10.0, -20.0]), 1.0, 3.0, 1.0, 2.7)),
        rtol=1e-6,
    )

    grad_fn = jax.jit(jax.grad(_scalar_model, argnums=(0, 1)))
    gradient, point_gradient = (np.asarray(g) for g in grad_fn(params, points))
    assert gradient.shape == (6,) and point_gradient.shape == points.shape
    assert np.all(np.isfinite(gradient)) and np.all(np.isfinite(point_gradient))
    assert gradient[0] == pytest.approx(float(eager), rel=1e-5)  # linear in q, q = 1
    # finite at the class boundaries too, where the stability interpolation has kinks
    for s in (0.0, 3.0, 5.0):
        g_params, g_points = grad_fn(params.at[5].set(s), points)
        assert np.all(np.isfinite(np.asarray(g_params))) and np.all(np.isfinite(np.asarray(g_points)))


def test_linear_in_q() -> None:
    points = jnp.array([[800.0, 30.0], [1500.0, -60.0]])
    one = column_enhancement_kg_m2(points, jnp.zeros(2), 1.0, 4.0, 0.5, 3.0)
    seven = column_enhancement_kg_m2(points, jnp.zeros(2), 7.0, 4.0, 0.5, 3.0)
    np.testing.assert_allclose(np.asarray(seven), 7.0 * np.asarray(one), rtol=1e-6)


def _weighted_plain(points, weights, source, q, u, v, s, floor, bend, cotangent):
    """``cotangent . sum_s w Omega`` by automatic differentiation of the formula itself."""
    columns = column_enhancement_kg_m2(points, source, q, u, v, s, sigma_floor_m=floor, bend_per_m=bend)
    return jnp.sum(cotangent * jnp.sum(weights * columns, axis=-1))


def _weighted_closed_form(points, weights, source, q, u, v, s, floor, bend, cotangent):
    columns = weighted_column_kg_m2(points, weights, source, q, u, v, s, sigma_floor_m=floor, bend_per_m=bend)
    return jnp.sum(cotangent * columns)


@pytest.mark.parametrize(
    "source, q, u, v, s, floor, bend",
    [
        ((10.0, -20.0), 0.8, 2.0, 1.5, 2.7, 15.0, 0.0),  # between classes C and D, straight
        ((10.0, -20.0), 0.8, 2.0, 1.5, 2.7, 15.0, 3e-4),  # the same plume bent 17 deg per km, to the left
        ((100.0, 50.0), 0.0, -1.0, 3.0, 0.4, 40.0, -2e-4),  # no emission: d / dq still the unit column
        ((0.0, 0.0), 2.0, 0.3, -0.2, 5.0, 5.0, 0.0),  # class F, weak wind
        ((-50.0, 80.0), 1.0, -3.0, 0.1, 3.0, 30.0, -5e-4),  # exactly class D, wind to the west, bent right
    ],
)
def test_weighted_column_gradient_is_the_formula_gradient(source, q, u, v, s, floor, bend) -> None:
    """Value and closed-form reverse-mode gradient of ``weighted_column_kg_m2`` equal those of the
    plume formula, for every argument, on points upwind, downwind and far across the plume."""
    rng = np.random.default_rng(3)
    points = jnp.asarray(rng.uniform(-1500.0, 3000.0, (400, 4, 2)), jnp.float32)
    weights = jnp.asarray(rng.uniform(0.0, 1.0, (400, 4)), jnp.float32)
    cotangent = jnp.asarray(rng.standard_normal(400), jnp.float32)
    args = (points, weights, jnp.asarray(source), q, u, v, s, floor, bend, cotangent)
    assert float(_weighted_closed_form(*args)) == pytest.approx(float(_weighted_plain(*args)), rel=1e-5)
    argnums = tuple(range(9))
    closed = jax.jit(jax.grad(_weighted_closed_form, argnums))(*args)
    plain = jax.jit(jax.grad(_weighted_plain, argnums))(*args)
    names = ("points", "weights", "source", "q", "u", "v", "s", "floor", "bend")
    for name, a, b in zip(names, closed, plain, strict=True):
        a, b = np.asarray(a, float), np.asarray(b, float)
        scale = np.max(np.abs(b))
        # every gradient is informative, except where the plume is zero (Q = 0: only d / dQ is not)
        # and at the end of the stability range
        assert scale > 0.0 or (q == 0.0 and name != "q") or (name == "s" and s == 5.0), name
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * max(scale, 1e-30), err_msg=name)


@pytest.mark.parametrize("bend", [3e-4, -5e-4])
@pytest.mark.parametrize("x_m", [300.0, 1000.0])
def test_a_bend_moves_the_centre_line_onto_its_parabola_and_keeps_the_flux(bend: float, x_m: float) -> None:
    """A bend ``k`` puts the cross-section at distance ``x`` around ``y = k x^2 / 2`` (to the left of the
    wind for ``k > 0``) with the straight plume's profile: ``u * integral(Omega dy) = Q`` is unchanged."""
    q, u, s = 1.5, 3.0, 2.0
    y = np.linspace(-1500.0, 1500.0, 30001)
    points = np.stack([np.full_like(y, x_m), y], axis=-1)
    bent = np.asarray(
        column_enhancement_kg_m2(points, jnp.zeros(2), q, u, 0.0, s, bend_per_m=bend), np.float64)
    straight = np.asarray(column_enhancement_kg_m2(points, jnp.zeros(2), q, u, 0.0, s), np.float64)
    dy = y[1] - y[0]
    assert u * bent.sum() * dy == pytest.approx(q, rel=1e-3)
    centre = float(np.sum(y * bent) / np.sum(bent))
    assert centre == pytest.approx(0.5 * bend * x_m**2, abs=0.5)
    shift = int(round(0.5 * bend * x_m**2 / dy))
    np.testing.assert_allclose(np.roll(straight, shift), bent, rtol=0, atol=1e-3 * straight.max())


@pytest.mark.slow
def test_weighted_column_second_derivative_by_reverse_over_reverse() -> None:
    """The closed-form gradient is itself differentiable: its Jacobian, reverse over reverse and
    forward over reverse (``jax.hessian``), matches the formula's Hessian; forward mode alone raises."""
    points = jnp.stack(jnp.meshgrid(jnp.linspace(-100.0, 2500.0, 25), jnp.linspace(-400.0, 400.0, 15)), -1)
    points = points.reshape(-1, 1, 2)
    weights = jnp.ones(points.shape[:2])
    cotangent = jnp.linspace(-1.0, 1.0, points.shape[0])

    def of(fn):
        return lambda p: fn(points, weights, p[:2], p[2], p[3], p[4], p[5], 15.0, p[6], cotangent)

    params = jnp.array([10.0, -20.0, 1.0, 3.0, 1.0, 2.7, 2e-4])
    closed = np.asarray(jax.jacrev(jax.grad(of(_weighted_closed_form)))(params))
    plain = np.asarray(jax.hessian(of(_weighted_plain))(params))
    np.testing.assert_allclose(closed, plain, rtol=0, atol=1e-3 * np.max(np.abs(plain)))
    forward_over_reverse = np.asarray(jax.hessian(of(_weighted_closed_form))(params))
    np.testing.assert_allclose(forward_over_reverse, plain, rtol=0, atol=1e-3 * np.max(np.abs(plain)))
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(of(_weighted_closed_form), (params,), (params,))
