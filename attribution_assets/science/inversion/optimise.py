"""Multi-start MAP: starting points, L-BFGS passes and the local optima of the potential.

Starts: the met wind direction and rotations of +-30, +-60, +-90 and 180 degrees, each with the
source positions, at least one prior sd apart, that score best on a grid over +-2 prior sd when Q is
profiled out analytically. The 30-degree steps matter: a start plume 20-30 degrees off a narrow real
plume barely overlaps it, so with rotations of 90 degrees only the search settled in another optimum
(often the plume read backwards from its far end) in 20 of 80 prior-drawn medium and strong events
(``benchmarks/validation_reference.py --per-class 40`` events; the optimum it reached lay 5-1,000
log-density units above the one polished from the truth), 9 with them, and 6 when the 6 best starts after
40 screening iterations are polished instead of 3 after 20. L-BFGS on the potential energy via
``jax.grad``, in coordinates scaled by the closed-form curvature of the backgrounds and noise
inflations. From the best optimum, each overpass's wind direction is then turned alone
(:func:`rotate_overpasses`): overpasses at different hours can see plumes far apart in direction.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from attribution_assets.science.inversion.groups import coupled_form
from attribution_assets.science.inversion.model import (
    group_predict,
    potential_and_gradient,
    rate_coordinate,
    unpack_latent,
)
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig
from attribution_assets.science.inversion.settings import InversionSettings, PotentialKind

DIRECTION_OFFSETS_RAD = (0.0, math.pi / 6, -math.pi / 6, math.pi / 3, -math.pi / 3, 0.5 * math.pi,
                         -0.5 * math.pi, math.pi)
"""Rotations of the met wind direction that start the MAP search, rad."""

Mode = tuple[np.ndarray, float]
"""A local optimum: whitened parameters ``z`` (P,) and the potential there."""


def profile_gain(z: jax.Array, data: InversionProblem, config: ModelConfig) -> tuple[jax.Array, jax.Array]:
    """Likelihood gain and best emission (kg h-1) of the geometry in ``z`` with Q profiled out.

    ``z`` must encode Q = 1 kg h-1. With backgrounds at their prior means and no noise inflation, the
    model is linear in Q, so ``Q_hat = m' Q r / m' Q m`` and the gain in log-likelihood is
    ``max(Q_hat, 0)^2 m' Q m / 2`` (a matched-filter statistic of the plume shape; ``Q`` the blocks'
    error precision, ``diag(1 / s^2)`` for independent errors).
    """
    phys = unpack_latent(z, data, config)
    cross, energy = jnp.zeros(()), jnp.full((), 1e-30)
    for group in data.groups:
        unit = group_predict(phys, group, config)
        cross = cross + jnp.sum(group.qr * unit)
        energy = energy + jnp.sum(group.qdiag * unit**2) + coupled_form(group, unit)
    q_hat = cross / energy
    return 0.5 * jnp.maximum(q_hat, 0.0) ** 2 * energy, q_hat


GAIN_BATCH = 16
"""Candidates evaluated together by :func:`profile_gains`: batches of a few plume fields stay in the
CPU's caches. On the three-instrument event of ``benchmarks/bench_inversion.py`` (68,000
observations, 2 cores) the 392 candidates of the fast answer took 0.24 s in batches of 16 and
0.44 s vectorised 49 at a time. The last batch is padded instead of evaluated by a second compiled
body (with lax.map's own remainder, the first invert of a fresh process took ~1 s longer)."""


@partial(jax.jit, static_argnames=("config",))
def _gain_batches(z: jax.Array, data: InversionProblem, config: ModelConfig) -> tuple[jax.Array, jax.Array]:
    """:func:`profile_gain` of every row of ``z`` (N / GAIN_BATCH, GAIN_BATCH, P), a batch at a time."""
    return jax.lax.map(jax.vmap(lambda row: profile_gain(row, data, config)), z)


def profile_gains(
    z: np.ndarray, data: InversionProblem, config: ModelConfig
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`profile_gain` (gain, best emission) of every row of ``z`` (N, P), ``GAIN_BATCH`` rows
    at a time (the last batch padded with copies of the first row, one compiled body)."""
    n = z.shape[0]
    padded = np.concatenate([z, np.repeat(z[:1], -n % GAIN_BATCH, axis=0)])
    padded = padded.reshape(-1, GAIN_BATCH, z.shape[1])
    gain, q_hat = _gain_batches(jnp.asarray(padded, jnp.float32), data, config)
    return np.asarray(gain, float).ravel()[:n], np.asarray(q_hat, float).ravel()[:n]


def _position_grid(config: ModelConfig, settings: InversionSettings) -> np.ndarray:
    """Candidate source positions (N, 2) in whitened units (prior sd)."""
    if config.fix_position:
        return np.zeros((1, 2))
    extent = settings.map_position_extent_sd
    axis = np.linspace(-extent, extent, settings.map_position_grid)
    return np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)


def _best_separated(score: np.ndarray, grid: np.ndarray, count: int) -> list[int]:
    """Indices of the ``count`` best-scoring grid positions at least one prior sd apart."""
    picked: list[int] = []
    for i in np.argsort(-score):
        if len(picked) == count:
            break
        if all(np.max(np.abs(grid[i] - grid[j])) >= 1.0 for j in picked):
            picked.append(int(i))
    return picked


def starting_points(data: InversionProblem, config: ModelConfig, settings: InversionSettings) -> np.ndarray:
    """Multi-start points (N, P) in ``z``.

    For each wind rotation (:data:`DIRECTION_OFFSETS_RAD`) the source positions on a grid over
    +-``map_position_extent_sd`` prior sd are ranked by the Q-profiled likelihood gain
    (:func:`profile_gain`) plus the log prior density of the position and the profiled Q; the
    ``map_starts_per_direction`` best positions at least one prior sd apart start the optimiser, with
    Q at its profiled value.
    """
    lay = config.layout()
    unit_zq = rate_coordinate(1.0, data, config)
    offsets = (0.0,) if config.fix_wind else DIRECTION_OFFSETS_RAD
    grid = _position_grid(config, settings)
    cand = np.zeros((len(offsets), grid.shape[0], config.dim))
    cand[..., lay["q"].start] = unit_zq
    if not config.fix_wind:
        cand[..., lay["direction"]] = np.stack([off / np.asarray(data.dir_sd) for off in offsets])[:, None, :]
    if not config.fix_position:
        cand[..., lay["position"]] = grid
    batch = profile_gains(cand.reshape(-1, config.dim), data, config)
    gains, q_hats = (a.reshape(len(offsets), -1) for a in batch)
    floor = 1e-6 * math.exp(float(data.q_loc)) if config.q_lognormal else -np.inf
    starts = []
    for cand_dir, gain, q_hat in zip(cand, gains, q_hats, strict=True):
        q = np.maximum(q_hat, floor)
        with np.errstate(invalid="ignore"):
            zq = rate_coordinate(q, data, config)
        score = gain - 0.5 * np.sum(grid**2, axis=1) - 0.5 * np.minimum(zq**2, 9.0)
        score = np.where(np.isfinite(score), score, -np.inf)
        for i in _best_separated(score, grid, settings.map_starts_per_direction):
            z0 = cand_dir[i].copy()
            z0[lay["q"].start] = float(np.clip(zq[i], -3.0, 3.0))
            starts.append(z0)
    return np.array(starts)


def curvature_scale(data: InversionProblem, config: ModelConfig) -> np.ndarray:
    """Approximate posterior sd (P,) of every whitened coordinate, for preconditioning the optimiser.

    Plume parameters get 1 (their prior sd). A block's background and noise-inflation coordinates
    get ``1 / sqrt(1 + a^2 S0)`` and ``1 / sqrt(1 + 2 c^2 n)`` (``a`` the background prior sd, ``S0``
    the block's ``1' Q 1``, ``c`` the log-inflation prior sd, ``n`` the observation count): the
    curvature of the no-source potential
    (:func:`~attribution_assets.science.inversion.laplace.absent_laplace_fit`) at unit inflation.
    Their curvature is up to ~10^6 times the plume parameters', which stalls L-BFGS in ``z``.
    """
    lay = config.layout()
    s0 = np.asarray(data.block_s0, float)
    scale = np.ones(config.dim)
    scale[lay["background"]] = 1.0 / np.sqrt(1.0 + np.asarray(data.bg_sd, float) ** 2 * s0)
    if not config.fix_inflation:
        n = np.asarray(data.block_n, float)
        scale[lay["inflation"]] = 1.0 / np.sqrt(1.0 + 2.0 * float(data.infl_log_sd) ** 2 * n)
    return scale


def _lbfgs(
    z0: np.ndarray,
    data: InversionProblem,
    config: ModelConfig,
    kind: PotentialKind,
    max_steps: int,
    scale: np.ndarray,
    ftol: float,
    gtol: float = 1e-5,
) -> tuple[np.ndarray, float]:
    """L-BFGS on the potential energy from ``z0`` in the coordinates ``z / scale`` (scipy's stopping
    rules: relative reduction of the value below ``ftol``, projected gradient below ``gtol``)."""

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = potential_and_gradient(jnp.asarray(x * scale, jnp.float32), data, config, kind)
        value = float(value)
        if not np.isfinite(value):
            return 1e30, np.zeros_like(x)
        return value, np.asarray(grad, dtype=float) * scale

    options = {"maxiter": max_steps, "maxfun": 2 * max_steps, "ftol": ftol, "gtol": gtol}
    res = optimize.minimize(fun, z0 / scale, jac=True, method="L-BFGS-B", options=options)
    return np.asarray(res.x) * scale, float(res.fun)


def minimise(
    z0: np.ndarray,
    data: InversionProblem,
    config: ModelConfig,
    kind: PotentialKind,
    max_steps: int,
    scale: np.ndarray | None = None,
) -> Mode:
    """L-BFGS on the potential energy from ``z0``; returns (z_hat, potential).

    With ``scale`` (:func:`curvature_scale`), a second pass continues in the coordinates
    ``z / scale`` from where the first stopped and never stops on a relative change of the value:
    the potential is summed in float32 (rounding ~1e-4 at values ~1e3), and with background
    coordinates 10^6 times stiffer than the plume's, the first pass can stop where float32 no longer
    resolves its progress, short of the minimum (a saddle of the Hessian, a Laplace fit of sd ~10
    prior sd). The second pass ends on a failed line search or a projected gradient below 0.01 in
    the scaled coordinates; the Newton polish of
    :func:`~attribution_assets.science.inversion.laplace.laplace_fit` does the rest.
    """
    z, value = _lbfgs(z0, data, config, kind, max_steps, np.ones_like(z0), 2.2e-9)
    if scale is None:
        return z, value
    z2, value2 = _lbfgs(z, data, config, kind, max_steps, scale, 0.0, 1e-2)
    return (z2, value2) if value2 <= value else (z, value)


def find_modes(
    data: InversionProblem,
    config: ModelConfig,
    settings: InversionSettings,
    starts: np.ndarray | None = None,
    kind: PotentialKind = "present",
) -> tuple[list[Mode], np.ndarray]:
    """Local optima of a multi-start MAP, best first, as (z_hat, potential), and the potential
    reached from each start (default starts: :func:`starting_points`).

    Every start gets ``map_screen_steps`` L-BFGS iterations; of those, the ``map_keep`` best whose
    potential is within ``map_keep_within`` (log-density units) of the best then run to convergence
    (at most ``map_steps`` iterations): a start that is still e^100 times less probable after the
    screening steps sits in another basin, and polishing it costs up to ten times more iterations
    than the best basin does. Polished optima closer than 0.05 (whitened units) to a better one are
    the same mode and left out. The best optimum's overpasses are then turned one at a time
    (:func:`rotate_overpasses`, unless the wind is fixed); a lower optimum that reaches leads the
    list. ``kind`` selects the density.
    """
    starts = starting_points(data, config, settings) if starts is None else np.atleast_2d(starts)
    scale = curvature_scale(data, config)
    screened = [minimise(z0, data, config, kind, settings.map_screen_steps) for z0 in starts]
    values = np.array([v for _, v in screened])
    close = values <= values.min() + settings.map_keep_within
    keep = [i for i in np.argsort(values)[: settings.map_keep] if close[i]]
    for i in keep:
        screened[i] = minimise(screened[i][0], data, config, kind, settings.map_steps, scale)
        values[i] = screened[i][1]
    modes: list[Mode] = []
    for i in sorted(keep, key=lambda i: values[i]):
        if all(np.max(np.abs(screened[i][0] - z)) > 0.05 for z, _ in modes):
            modes.append(screened[i])
    if not config.fix_wind:
        best = rotate_overpasses(modes[0], data, config, kind, settings.map_steps, scale)
        if best[1] < modes[0][1]:
            modes = [best] + [m for m in modes if np.max(np.abs(m[0] - best[0])) > 0.05]
    return modes, values


def float32_rounding(potential: float) -> float:
    """Float32 rounding of a potential summed over many observations (its noise floor)."""
    return 1e-6 * abs(potential) + 1e-3


def potential_value(z: np.ndarray, data: InversionProblem, config: ModelConfig, kind: PotentialKind) -> float:
    """The potential at ``z`` (through the compiled value-and-gradient program)."""
    return float(potential_and_gradient(jnp.asarray(z, jnp.float32), data, config, kind)[0])


def potential_gradient(
    z: np.ndarray, data: InversionProblem, config: ModelConfig, kind: PotentialKind
) -> np.ndarray:
    """The gradient (P,) of the potential at ``z``."""
    return np.asarray(potential_and_gradient(jnp.asarray(z, jnp.float32), data, config, kind)[1], float)


def rotate_overpasses(
    mode: Mode, data: InversionProblem, config: ModelConfig, kind: PotentialKind, max_steps: int,
    scale: np.ndarray,
) -> Mode:
    """``mode`` improved one overpass's wind direction at a time: the rotations of
    :data:`DIRECTION_OFFSETS_RAD` of each overpass's direction alone, from the optimum; the best of
    them, where it lies below the optimum, starts L-BFGS, and the optimum it reaches replaces
    ``mode`` when lower, once per overpass at most.

    The multi-start rotates every overpass's wind together, but instruments that pass at other
    hours see plumes whose directions differ by more than the met error: on the misspecified
    validation set (``--events 300 --seed 2``) the search settled with one of three overpasses 30
    and 60 degrees off, 1,100 and 1,700 log-density units above the optimum with it turned.
    """
    lay = config.layout()
    first, sd = lay["direction"].start, np.asarray(data.dir_sd, float)
    z, value = np.asarray(mode[0], float), float(mode[1])
    for _ in range(sd.size):
        turned = []
        for overpass in range(sd.size):
            for offset in DIRECTION_OFFSETS_RAD[1:]:
                candidate = z.copy()
                candidate[first + overpass] += offset / sd[overpass]
                turned.append(candidate)
        values = [potential_value(c, data, config, kind) for c in turned]
        best = int(np.argmin(values))
        if values[best] >= value - float32_rounding(value):
            break
        z_next, value_next = minimise(turned[best], data, config, kind, max_steps, scale)
        if value_next >= value - float32_rounding(value):
            break
        z, value = z_next, value_next
    return z, value


def find_map(
    data: InversionProblem,
    config: ModelConfig,
    settings: InversionSettings,
    starts: np.ndarray | None = None,
    kind: PotentialKind = "present",
) -> tuple[np.ndarray, float, np.ndarray]:
    """Best of a multi-start MAP (:func:`find_modes`): (z_hat, potential at z_hat, potential reached
    from each start)."""
    modes, values = find_modes(data, config, settings, starts, kind)
    return modes[0][0], modes[0][1], values
