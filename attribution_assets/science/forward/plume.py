"""Gaussian plume of a point source, integrated over height: the column enhancement (kg m-2).

For a point source of rate ``Q`` (kg s-1) in a uniform wind ``u`` (m s-1) with ground reflection,
integrating the concentration over z >= 0 gives exactly

    Omega(x, y) = Q / (sqrt(2 pi) sigma_y(x) u) * exp(-y^2 / (2 sigma_y(x)^2))      [kg m-2]

with ``x`` downwind and ``y`` crosswind of the source (Seinfeld & Pandis 2016, *Atmospheric
Chemistry and Physics*, 3rd ed., eq. 18.62, integrated over z; Krings et al. 2011, AMT 4, 1735,
eq. 2).  Mass is conserved: ``u * integral(Omega dy) = Q`` at every downwind distance.

Dispersion follows Briggs (1973) open-country and urban curves (as tabulated by Griffiths 1994,
Atmos. Environ. 28, 2861, table 1; CCPS 1999 *Guidelines for consequence analysis*, table 2.11).
Stability enters as a continuous index ``s`` in [0, 5] (0 = Pasquill-Gifford class A ... 5 = F);
sigma interpolates linearly between neighbouring classes so the model is differentiable in ``s``.

Two regularisations keep the model smooth for gradient-based inference:
- a sigmoid upwind cut-off of width ``cutoff_length_m`` instead of a hard step at x = 0 (a hard
  step makes the likelihood discontinuous in source position and wind direction, which causes
  divergent NUTS transitions);
- a floor ``sigma_floor_m`` added in quadrature to sigma_y, standing for the finite source size and
  the sub-pixel mixing that the point-source formula lacks at x -> 0.

A snapshot's plume need not be straight: its puffs left the source in the winds of the last minutes,
so its centre line turns with the wind's direction changes (meander; Gifford 1959, *Adv. Geophys.* 6,
117, the fluctuating-plume model). ``bend_per_m`` ``k`` (rad m-1) bends the centre line into the
parabola ``y = k x+^2 / 2``, the first-order shape of a plume whose direction turns at a steady rate
``k U`` (rad s-1) over its travel time: the crosswind distance becomes ``y - k x+^2 / 2``. A bend
shifts each cross-section sideways and keeps ``u * integral(Omega dy) = Q``; ``k = 0`` (the
default) is the straight plume.

All functions are pure JAX and accept broadcastable arrays (jit/vmap/grad friendly).
:func:`weighted_column_kg_m2`, the column averaged over each observation's quadrature points that
the observation operators and the inversion evaluate, carries its reverse-mode gradient in closed
form.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

N_STABILITY_CLASSES = 6
STABILITY_CLASSES = "ABCDEF"

# sigma = a * x * (1 + b * x) ** p, per Pasquill-Gifford class A..F; x and sigma in metres.
# numpy float32 (the precision JAX computes in), so that importing the module starts no JAX backend.
_RURAL_SIGMA_Y = np.array(
    [
        [0.22, 1e-4, -0.5],
        [0.16, 1e-4, -0.5],
        [0.11, 1e-4, -0.5],
        [0.08, 1e-4, -0.5],
        [0.06, 1e-4, -0.5],
        [0.04, 1e-4, -0.5],
    ],
    np.float32,
)
_RURAL_SIGMA_Z = np.array(
    [
        [0.20, 0.0, 0.0],
        [0.12, 0.0, 0.0],
        [0.08, 2e-4, -0.5],
        [0.06, 1.5e-3, -0.5],
        [0.03, 3e-4, -1.0],
        [0.016, 3e-4, -1.0],
    ],
    np.float32,
)
_URBAN_SIGMA_Y = np.array(
    [
        [0.32, 4e-4, -0.5],
        [0.32, 4e-4, -0.5],
        [0.22, 4e-4, -0.5],
        [0.16, 4e-4, -0.5],
        [0.11, 4e-4, -0.5],
        [0.11, 4e-4, -0.5],
    ],
    np.float32,
)
_URBAN_SIGMA_Z = np.array(
    [
        [0.24, 1e-3, 0.5],
        [0.24, 1e-3, 0.5],
        [0.20, 0.0, 0.0],
        [0.14, 3e-4, -0.5],
        [0.08, 1.5e-3, -0.5],
        [0.08, 1.5e-3, -0.5],
    ],
    np.float32,
)


def stability_index(pg_class: str) -> float:
    """Continuous stability index of a Pasquill-Gifford class letter (``"A"`` -> 0 ... ``"F"`` -> 5)."""
    letter = pg_class.strip().upper()
    if len(letter) != 1 or letter not in STABILITY_CLASSES:
        raise ValueError(f"unknown Pasquill-Gifford class {pg_class!r}; expected one of A-F")
    return float(STABILITY_CLASSES.index(letter))


def _class_bracket(stability_index: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The lower bracketing class index of ``s`` and the fraction towards the next class."""
    s = jnp.clip(jnp.asarray(stability_index, dtype=float), 0.0, N_STABILITY_CLASSES - 1.0)
    lower = jnp.clip(jnp.floor(s), 0, N_STABILITY_CLASSES - 2).astype(jnp.int32)
    return lower, s - lower


def _distance(x_m: jax.Array) -> jax.Array:
    """Downwind distance clipped at 0 (m)."""
    return jnp.maximum(jnp.asarray(x_m, dtype=float), 0.0)


def _sigma_y_table(urban: bool) -> np.ndarray:
    return _URBAN_SIGMA_Y if urban else _RURAL_SIGMA_Y


def _sigma_y_a(stability_index: jax.Array, table: np.ndarray) -> jax.Array:
    """The coefficient ``a`` of ``sigma_y = a x / sqrt(1 + b x)``, linear in ``s`` between classes."""
    lower, frac = _class_bracket(stability_index)
    table = jnp.asarray(table)
    return (1.0 - frac) * table[lower, 0] + frac * table[lower + 1, 0]


def _sigma_y_b(table: np.ndarray) -> float:
    """The coefficient ``b`` of ``sigma_y = a x / sqrt(1 + b x)``, the same in every class."""
    return float(np.asarray(table)[0, 1])


def _briggs(x_m: jax.Array, stability_index: jax.Array, table: np.ndarray) -> jax.Array:
    """sigma (m) interpolated linearly in ``s`` between the two bracketing classes only."""
    x, (lower, frac) = _distance(x_m), _class_bracket(stability_index)
    table = jnp.asarray(table)
    lo, hi = table[lower], table[lower + 1]
    sigma_lo = lo[..., 0] * x * (1.0 + lo[..., 1] * x) ** lo[..., 2]
    sigma_hi = hi[..., 0] * x * (1.0 + hi[..., 1] * x) ** hi[..., 2]
    return (1.0 - frac) * sigma_lo + frac * sigma_hi


def _briggs_y(x_m: jax.Array, stability_index: jax.Array, table: np.ndarray) -> jax.Array:
    """sigma_y (m) of :func:`_briggs` for tables whose ``b`` and ``p = -1/2`` are the same in every
    class (both Briggs sigma_y tables): ``sigma = a(s) x / sqrt(1 + b x)`` with ``a`` interpolated,
    identical to interpolating the two class curves, at one ``rsqrt`` per point instead of two powers.
    """
    x = _distance(x_m)
    return _sigma_y_a(stability_index, table) * x * jax.lax.rsqrt(1.0 + _sigma_y_b(table) * x)


def briggs_sigma_y_m(x_m: jax.Array, stability_index: jax.Array, urban: bool = False) -> jax.Array:
    """Crosswind dispersion sigma_y (m) at downwind distance ``x_m`` (m) for stability index ``s``.

    Briggs (1973) open-country (default) or urban curves; e.g. class D (s = 3), x = 1 km:
    sigma_y = 80 / sqrt(1.1) = 76.3 m.
    """
    return _briggs_y(x_m, stability_index, _sigma_y_table(urban))


def briggs_sigma_z_m(x_m: jax.Array, stability_index: jax.Array, urban: bool = False) -> jax.Array:
    """Vertical dispersion sigma_z (m) at downwind distance ``x_m`` (m) for stability index ``s``."""
    return _briggs(x_m, stability_index, _URBAN_SIGMA_Z if urban else _RURAL_SIGMA_Z)


def instrument_sigma_floor_m(pixel_m: float, psf_sigma_m: float = 0.0, source_sigma_m: float = 15.0) -> float:
    """Crosswind blur (m) of a pixel of width ``pixel_m`` seen through a Gaussian PSF, added in
    quadrature to the finite-source width ``source_sigma_m``."""
    return float((source_sigma_m**2 + psf_sigma_m**2 + pixel_m**2 / 12.0) ** 0.5)


def plume_coordinates(
    points_xy_m: jax.Array, source_xy_m: jax.Array, wind_u_m_s: jax.Array, wind_v_m_s: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Downwind and crosswind distance (m) of each point from the source, and the wind speed (m s-1).

    ``points_xy_m`` (..., 2) in the local frame (x east, y north); the wind vector (u, v) points
    where the air goes. Crosswind is positive to the left of the wind.
    """
    speed = jnp.sqrt(wind_u_m_s**2 + wind_v_m_s**2 + 1e-12)
    ex, ey = wind_u_m_s / speed, wind_v_m_s / speed
    dx = points_xy_m[..., 0] - source_xy_m[..., 0]
    dy = points_xy_m[..., 1] - source_xy_m[..., 1]
    return dx * ex + dy * ey, -dx * ey + dy * ex, speed


class _Terms(NamedTuple):
    """Per-point intermediate values of the plume formula (all shaped like the points, or scalars)."""

    speed: jax.Array  # wind speed, m s-1 (scalar or broadcast)
    ex: jax.Array  # unit wind vector, east component
    ey: jax.Array  # unit wind vector, north component
    downwind: jax.Array  # x, m
    crosswind_straight: jax.Array  # y of the straight plume, m
    crosswind: jax.Array  # y - k x+^2 / 2: crosswind distance from the bent centre line, m
    downwind_pos: jax.Array  # softplus distance L log(1 + exp(x / L)), m
    cutoff: jax.Array  # logistic upwind cut-off, 1 / (1 + exp(-x / L))
    rsq: jax.Array  # 1 / sqrt(1 + b x+)
    sigma_plume: jax.Array  # Briggs sigma_y at x+, m
    inv_sigma: jax.Array  # 1 / sqrt(sigma_plume^2 + floor^2), m-1
    crosswind_sq: jax.Array  # (y / sigma)^2
    unit_column: jax.Array  # column per unit rate, s m-2 (Omega / Q)


def _terms(
    points_xy_m: jax.Array,
    source_xy_m: jax.Array,
    wind_u_m_s: jax.Array,
    wind_v_m_s: jax.Array,
    sigma_y_a: jax.Array,
    sigma_y_b: float,
    sigma_floor_m: jax.Array | float,
    cutoff_length_m: float,
    bend_per_m: jax.Array | float = 0.0,
) -> _Terms:
    """The plume formula of the module docstring, step by step, with ``sigma_y = a x+ / sqrt(1 + b x+)``
    and the centre line bent by ``bend_per_m``."""
    downwind, straight, speed = plume_coordinates(points_xy_m, source_xy_m, wind_u_m_s, wind_v_m_s)
    # softplus and logistic cut-off of x / L from one exponential: e = exp(-|x| / L)
    scaled = downwind / cutoff_length_m
    e = jnp.exp(-jnp.abs(scaled))
    downwind_pos = cutoff_length_m * (jnp.maximum(scaled, 0.0) + jnp.log1p(e))
    cutoff = jnp.where(scaled >= 0.0, 1.0, e) / (1.0 + e)
    crosswind = straight - 0.5 * bend_per_m * downwind_pos**2
    rsq = jax.lax.rsqrt(1.0 + sigma_y_b * downwind_pos)
    sigma_plume = sigma_y_a * downwind_pos * rsq
    inv_sigma = jax.lax.rsqrt(sigma_plume**2 + sigma_floor_m**2)
    crosswind_sq = (crosswind * inv_sigma) ** 2
    gaussian = jnp.exp(-0.5 * crosswind_sq) * inv_sigma / jnp.sqrt(2.0 * jnp.pi)
    return _Terms(
        speed,
        wind_u_m_s / speed,
        wind_v_m_s / speed,
        downwind,
        straight,
        crosswind,
        downwind_pos,
        cutoff,
        rsq,
        sigma_plume,
        inv_sigma,
        crosswind_sq,
        gaussian * cutoff / speed,
    )


def column_enhancement_kg_m2(
    points_xy_m: jax.Array,
    source_xy_m: jax.Array,
    q_kg_s: jax.Array,
    wind_u_m_s: jax.Array,
    wind_v_m_s: jax.Array,
    stability_index: jax.Array,
    urban: bool = False,
    sigma_floor_m: jax.Array | float = 15.0,
    cutoff_length_m: float = 20.0,
    bend_per_m: jax.Array | float = 0.0,
) -> jax.Array:
    """Vertically integrated plume enhancement (kg m-2) at ``points_xy_m`` (..., 2), shape (...).

    ``source_xy_m`` (2,) in metres, ``q_kg_s`` in kg s-1, wind components in m s-1 (the direction the
    air moves to), ``stability_index`` in [0, 5], ``bend_per_m`` the centre line's bend (rad m-1,
    positive to the left of the wind); every argument broadcasts against the points (e.g. a
    per-point wind or ``sigma_floor_m``). Downwind of a few ``cutoff_length_m`` the result integrates
    across the plume to exactly ``Q / u``.

    ``sigma_floor_m`` also carries an instrument's spatial response: a Gaussian point-spread function
    of width ``s_psf`` and a pixel of width ``w`` (box-car, variance ``w^2 / 12``) blur a Gaussian
    crosswind profile into a Gaussian of variance ``sigma_y^2 + s_psf^2 + w^2 / 12``, so a fine imager
    needs one evaluation per pixel (:func:`instrument_sigma_floor_m`).
    """
    table = _sigma_y_table(urban)
    terms = _terms(
        jnp.asarray(points_xy_m, float),
        jnp.asarray(source_xy_m, dtype=float),
        wind_u_m_s,
        wind_v_m_s,
        _sigma_y_a(stability_index, table),
        _sigma_y_b(table),
        sigma_floor_m,
        cutoff_length_m,
        bend_per_m,
    )
    return q_kg_s * terms.unit_column


def weighted_column_kg_m2(
    points_xy_m: jax.Array,
    weights: jax.Array,
    source_xy_m: jax.Array,
    q_kg_s: jax.Array,
    wind_u_m_s: jax.Array,
    wind_v_m_s: jax.Array,
    stability_index: jax.Array,
    urban: bool = False,
    sigma_floor_m: jax.Array | float = 15.0,
    cutoff_length_m: float = 20.0,
    bend_per_m: jax.Array | float = 0.0,
) -> jax.Array:
    """``sum_s weights[..., s] * Omega(points[..., s, :])`` (kg m-2), shape ``weights.shape[:-1]``:
    the column of :func:`column_enhancement_kg_m2` averaged over each observation's quadrature points.

    ``points_xy_m`` (n, S, 2), ``weights`` (n, S); the source (2,), rate, wind, stability, floor and
    bend are scalars. Values equal :func:`column_enhancement_kg_m2`. The reverse-mode derivative is the
    closed form of :func:`_weighted_column_bwd`: a few sums over the points of terms the forward
    pass already holds, where differentiating the formula step by step sweeps back through every
    intermediate array (on 2 CPU cores the forward model with its gradient costs about 2.5x the
    forward alone, against 3.2x; ``benchmarks/bench_forward.py``). Being a custom VJP it has no
    forward mode (``jax.jvp`` raises); second derivatives go through the reverse mode, as
    ``jax.jacrev(jax.grad(...))`` or ``jax.hessian`` (forward over reverse).
    """
    table = _sigma_y_table(urban)
    return _weighted_column(
        _sigma_y_b(table),
        cutoff_length_m,
        jnp.asarray(points_xy_m, float),
        jnp.asarray(weights, float),
        jnp.asarray(source_xy_m, float),
        jnp.asarray(q_kg_s, float),
        jnp.asarray(wind_u_m_s, float),
        jnp.asarray(wind_v_m_s, float),
        _sigma_y_a(stability_index, table),
        jnp.asarray(sigma_floor_m, float),
        jnp.asarray(bend_per_m, float),
    )


def _weighted_column_fwd(b, cutoff_length_m, points, weights, source, q, u, v, a, floor, bend):
    """The weighted column and the residuals of its closed-form gradient (the formula's terms)."""
    terms = _terms(points, source, u, v, a, b, floor, cutoff_length_m, bend)
    return q * jnp.sum(weights * terms.unit_column, axis=-1), (weights, q, a, floor, bend, terms)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _weighted_column(b, cutoff_length_m, points, weights, source, q, u, v, a, floor, bend):
    return _weighted_column_fwd(b, cutoff_length_m, points, weights, source, q, u, v, a, floor, bend)[0]


def _weighted_column_bwd(b, cutoff_length_m, residuals, cotangent):
    """Closed-form cotangents of :func:`weighted_column_kg_m2` for every argument.

    Differentiating the column of the module docstring, ``Omega = Q G(y, sigma) c(x) / u`` (``G``
    the crosswind Gaussian, ``c`` the logistic cut-off, ``x+`` its softplus distance,
    ``sigma^2 = sigma_p(x+)^2 + f^2``, ``sigma_p = a x+ / sqrt(1 + b x+)``), gives per point

        d ln Omega / dx = (1 - c) / L + k c a r (1 - b x+ r^2 / 2)
        d ln Omega / dy = -y / sigma^2
        d ln Omega / da = k x+ r
        d ln Omega / df = f (y^2 / sigma^2 - 1) / sigma^2

    with ``k = sigma_p (y^2 / sigma^2 - 1) / sigma^2`` and ``r = 1 / sqrt(1 + b x+)``. With a bend
    ``kb`` the Gaussian sees ``y - kb x+^2 / 2`` (written ``y`` above), so ``d ln Omega / dx`` gains
    ``-(d ln Omega / dy) kb x+ c`` (``dx+ / dx = c``) and ``d ln Omega / dkb = -(d ln Omega / dy) x+^2 / 2``.
    The straight distances ``x = (p - s) . e`` and ``y0 = (p - s) x e`` rotate with the wind angle
    ``phi`` (``dx / dphi = y0``, ``dy0 / dphi = -x``), so the source, wind speed, angle and bend each
    need one sum over the points of ``h = cotangent * weight * Omega`` times these terms.
    """
    weights, q, a, floor, bend, t = residuals
    unit = cotangent[..., None] * weights * t.unit_column  # d out / d q per point
    h = q * unit
    inv_var = t.inv_sigma**2
    k = t.sigma_plume * inv_var * (t.crosswind_sq - 1.0)
    d_sigma_d_x = a * t.rsq * (1.0 - 0.5 * b * t.downwind_pos * t.rsq**2)  # d sigma_p / d x+
    ln_y = -t.crosswind * inv_var
    ln_x = (1.0 - t.cutoff) / cutoff_length_m + t.cutoff * (k * d_sigma_d_x - ln_y * bend * t.downwind_pos)
    hx, hy = h * ln_x, h * ln_y
    sum_unit, sum_x, sum_y = jnp.sum(unit), jnp.sum(hx), jnp.sum(hy)
    sum_h = q * sum_unit
    sum_phi = jnp.sum(hx * t.crosswind_straight - hy * t.downwind)
    sum_bend = -0.5 * jnp.sum(hy * t.downwind_pos**2)
    sum_a = jnp.sum(h * k * t.downwind_pos * t.rsq)
    sum_f = jnp.sum(h * floor * inv_var * (t.crosswind_sq - 1.0))
    # d / d point = -(d / d source) per point: x and y depend on p - s
    d_points = jnp.stack([hx * t.ex - hy * t.ey, hx * t.ey + hy * t.ex], axis=-1)
    d_source = -jnp.stack([sum_x * t.ex - sum_y * t.ey, sum_x * t.ey + sum_y * t.ex])
    # u = speed cos(phi), v = speed sin(phi); Omega ~ 1 / speed
    d_speed, d_phi = -sum_h / t.speed, sum_phi
    d_u = d_speed * t.ex - d_phi * t.ey / t.speed
    d_v = d_speed * t.ey + d_phi * t.ex / t.speed
    d_weights = cotangent[..., None] * q * t.unit_column
    return d_points, d_weights, d_source, sum_unit, d_u, d_v, sum_a, sum_f, sum_bend


_weighted_column.defvjp(_weighted_column_fwd, _weighted_column_bwd)
