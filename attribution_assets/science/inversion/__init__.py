"""Joint Bayesian inversion of a point source from several instruments and overpasses.

Forward model (one shape for every instrument, see :mod:`attribution_assets.science.forward.operators`):
observation ``i`` of block ``b`` taken at overpass ``o`` is

    y_i ~ Normal(B_b + c * k_i * sum_s w_is * Omega(p_is; x0, y0, Q, u_o, v_o, s_o),  lambda_b * sigma_i)

with ``Omega`` the Gaussian-plume column enhancement (kg m-2,
:mod:`attribution_assets.science.forward.plume`),
``B_b`` the block's background (observation units), ``lambda_b`` a noise inflation and ``c`` the
binary "source present" indicator. Each block is one group of arrays (observations x quadrature
points) padded to a geometric bucket size, so the likelihood is vectorised at every instrument's
native resolution and similar events reuse the compiled program. For NUTS, observations the plume
cannot reach under a widened Laplace approximation enter through per-block sufficient statistics.

Priors
- ``Q`` (kg h-1): log-normal with a gas-dependent median (CH4 1000 kg h-1, CO2 1e6 kg h-1) and log-sd
  2, or Normal (used for the linear-Gaussian checks).
- source position (m, local frame): Normal around the alert, sd 300 m.
- per overpass, independently: wind speed log-normal with the met prior's mean and sd (moment
  matched), wind direction Normal around the met direction with the met direction sd, stability
  ``s = 5 sigmoid(eta)`` with ``eta`` Normal so that ``s`` has ~1 class sd around the met class.
  Independent per-overpass wind errors are what lets several overpasses tighten ``Q`` and not only
  ``Q/u`` (Varon et al. 2018, AMT 11, 5673: single-image ``Q`` error is dominated by the wind).
- per block (one instrument granule): background Normal around the median of ``y`` with sd
  10 x max(robust spread of ``y``, median ``sigma``); noise inflation ``lambda ~ LogNormal(0, 0.5)``
  (median 1 trusts the reported precision; 95 % range 0.38-2.7 lets the data correct both
  over- and under-stated precisions).

Source presence. ``c ~ Bernoulli(pi)`` (``pi = 0.5``) is marginalised analytically:
``p(y | theta) = (1 - pi) p(y | theta, c=0) + pi p(y | theta, c=1)`` (a two-component mixture,
evaluated with logsumexp), so NUTS samples a smooth density. Per draw, ``c`` is then drawn from its
exact conditional ``P(c=1 | theta, y) = sigmoid(logit(pi) + log p(y|theta,1) - log p(y|theta,0))``;
emission draws are exactly 0 where ``c = 0``, and ``P(source | y)`` is the Rao-Blackwellised mean of
the conditional probabilities (the standard treatment of discrete latents in NumPyro/Stan, e.g.
Stan User's Guide, "Latent discrete parameters"). ``detected`` requires ``P(source | y) >= 0.5`` and
a 5th percentile of the emission above 0 (i.e. fewer than 5 % of draws in the no-source component).

Inference: multi-start MAP (met wind direction and rotations of +-90 and 180 degrees, each with the
source positions, at least one prior sd apart, that score best on a grid over +-2 prior sd when Q is
profiled out analytically; L-BFGS on the potential energy via ``jax.grad``, in coordinates scaled by
the closed-form curvature of the backgrounds and noise inflations), Laplace approximation
at the best MAP (Hessian of the potential in the unconstrained space) and at the other local optima,
then NUTS (Hoffman & Gelman 2014, JMLR 15, 1593) in
Laplace-preconditioned coordinates ``z = z_map + L w`` (``L L^T`` the Laplace covariance), with
chain 0 started at the MAP and the others at small Laplace-scaled offsets from it, so that chains
do not start in different (wind direction, position) modes. Every NUTS transition is followed by a
mode-jumping Metropolis-Hastings step whose independence proposal is a mixture of the Laplace fits
(the escalated run adds a Gaussian per mode the first run's chains visited), so that chains move
between modes no Hamiltonian trajectory connects, such as two candidate sources or a noise feature
fitted with a rotated wind. Convergence is judged by
rank-normalised R-hat, bulk/tail ESS and divergences
(:mod:`attribution_assets.science.inversion.diagnostics`);
a failed check triggers one automatic escalation: two further runs, each continuing where the last
ended, with a longer warm-up in all, ``target_accept_prob = 0.9``, preconditioning by the moments of
the previous run's draws, a mode-jumping proposal built from those draws with its weights adapted
to the posterior by importance sampling, and 24 jump tries after every NUTS transition.
The P(source) of the Laplace summary compares Laplace evidences of the source and no-source models.

Every latent quantity is a whitened standard-normal coordinate ``z`` (non-centred
parameterisation, Papaspiliopoulos, Roberts & Skold 2007, Stat. Sci. 22, 59): ``z`` is the single
NumPyro site and the physical values are deterministic transforms of it.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import NUTS
from scipy import optimize

from attribution_assets.science.forward.operators import ObservationBlock, padded_rows, predict_block
from attribution_assets.science.inversion.diagnostics import (
    ESS_THRESHOLD,
    convergence_diagnostics,
    is_converged,
)
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import MAD_TO_SD, kg_h_to_kg_s

DEFAULT_Q_MEDIAN_KG_H = {"CH4": 1000.0, "CO2": 1.0e6}
_DIRECTION_OFFSETS_RAD = (0.0, 0.5 * math.pi, -0.5 * math.pi, math.pi)


@dataclass(frozen=True)
class InversionSettings:
    """Sampler, optimiser and prior settings of :func:`invert` (all frozen, hashable).

    Emission prior: ``q_prior`` "lognormal" (median ``q_median_kg_h``, default per gas, and natural-log
    sd ``q_log_sd``) or "normal" (``q_mean_kg_h``, ``q_sd_kg_h``). ``presence=False`` makes the
    source always present (no mixture). ``fix_*`` pin wind (to the met prior), position (to
    ``position_prior_xy_m``), stability (to the met prior) or noise inflation (to 1); with all four
    fixed and a Normal ``Q`` prior the model is linear-Gaussian in ``Q`` and the backgrounds.
    ``sampler`` "nuts" (default) or "laplace" (draws from the Laplace approximation only).
    ``mode_jumps=False`` runs plain NUTS, without the mode-jumping steps (see :func:`_sampler`).
    ``escalation_*``: the automatic rerun after failed diagnostics (warm-up iterations in all, NUTS
    target acceptance, mode-jumping tries per transition; see :func:`_sample`).
    Chains run in parallel threads (one per CPU core) through one compiled NUTS program per problem
    shape (on CPU, batching chains makes every chain wait for the longest trajectory, and chains on
    separate devices recompile on every run).
    """

    num_chains: int = 4
    num_warmup: int = 500
    num_samples: int = 1000
    target_accept: float = 0.8
    max_tree_depth: int = 8
    seed: int = 0
    sampler: str = "nuts"
    escalate: bool = True
    mode_jumps: bool = True
    escalation_warmup: int = 1500
    escalation_target_accept: float = 0.9
    escalation_jump_tries: int = 24
    map_steps: int = 300
    map_screen_steps: int = 20
    map_keep: int = 3
    map_keep_within: float = 100.0
    map_position_grid: int = 13
    map_position_extent_sd: float = 2.0
    map_starts_per_direction: int = 2
    laplace_draws: int = 2000
    q_prior: str = "lognormal"
    q_median_kg_h: float | None = None
    q_log_sd: float = 2.0
    q_mean_kg_h: float | None = None
    q_sd_kg_h: float | None = None
    position_prior_xy_m: tuple[float, float] = (0.0, 0.0)
    position_sd_m: float = 300.0
    stability_sd: float = 1.0
    background_sd_factor: float = 10.0
    noise_inflation_log_sd: float = 0.5
    prior_p_source: float = 0.5
    presence: bool = True
    fix_wind: bool = False
    fix_position: bool = False
    fix_stability: bool = False
    fix_noise_inflation: bool = False
    urban: bool = False


@dataclass(frozen=True)
class _Config:
    """Static (compile-time) structure of the model."""

    n_blocks: int
    n_overpasses: int
    q_lognormal: bool
    presence: bool
    fix_wind: bool
    fix_position: bool
    fix_stability: bool
    fix_inflation: bool
    urban: bool

    def layout(self) -> dict[str, slice]:
        """Slices of the whitened latent vector ``z`` for each free parameter group."""
        sizes = [("q", 1)]
        if not self.fix_position:
            sizes.append(("position", 2))
        if not self.fix_wind:
            sizes += [("speed", self.n_overpasses), ("direction", self.n_overpasses)]
        if not self.fix_stability:
            sizes.append(("stability", self.n_overpasses))
        sizes.append(("background", self.n_blocks))
        if not self.fix_inflation:
            sizes.append(("inflation", self.n_blocks))
        out, start = {}, 0
        for name, size in sizes:
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def dim(self) -> int:
        """Length of the latent vector ``z``."""
        return max(s.stop for s in self.layout().values())


class _Group(NamedTuple):
    """The observations of one block that the plume can reach (a JAX pytree, float32).

    Rows are padded to a bucket size (:func:`operators.padded_rows`); padded rows have ``live = 0``,
    ``k = 0`` and zero weights and contribute nothing. One group per block keeps the block's
    background, noise inflation and overpass wind scalars, with no per-row gather or scatter.
    """

    y: jax.Array  # (n,) observation minus its block's prior background, block units
    sigma: jax.Array  # (n,) reported 1-sigma, block units
    k: jax.Array  # (n,) obs units per kg m-2
    live: jax.Array  # (n,) 1 for an observation, 0 for padding
    points: jax.Array  # (n, S, 2) quadrature points, m
    weights: jax.Array  # (n, S)
    block: jax.Array  # () int32 block index
    overpass: jax.Array  # () int32 overpass index
    sigma_floor_m: jax.Array  # () crosswind blur of the instrument response, m


class _Data(NamedTuple):
    """The observations and prior hyper-parameters of one event (a JAX pytree; float32).

    ``groups`` hold the observations the plume can reach (all of them for MAP and Laplace; the
    screened subset for NUTS). The others enter through per-block sufficient statistics of their
    residuals ``r = y - prior background``: ``rest_s0 = sum 1/sigma^2``, ``rest_s1 = sum r/sigma^2``,
    ``rest_s2 = sum r^2/sigma^2``, exact for a model whose plume term is zero there.
    """

    groups: tuple[_Group, ...]
    rest_s0: jax.Array  # (B,)
    rest_s1: jax.Array  # (B,)
    rest_s2: jax.Array  # (B,)
    block_n: jax.Array  # (B,) observations per block
    q_loc: jax.Array  # log(median kg/h) or mean kg/h
    q_scale: jax.Array  # log-sd or sd kg/h
    pos_center: jax.Array  # (2,) m
    pos_sd: jax.Array  # m
    speed0: jax.Array  # (O,) met speed, m/s
    speed_logmu: jax.Array  # (O,)
    speed_logsd: jax.Array  # (O,)
    dir0: jax.Array  # (O,) rad, direction the air moves to
    dir_sd: jax.Array  # (O,) rad
    stab0: jax.Array  # (O,) met stability index
    stab_eta_mu: jax.Array  # (O,)
    stab_eta_sd: jax.Array  # (O,)
    bg_mu: jax.Array  # (B,) obs units
    bg_sd: jax.Array  # (B,) obs units
    infl_log_sd: jax.Array
    log_prior_odds: jax.Array


# ----------------------------------------------------------------------------------------------
# Building the flat problem
# ----------------------------------------------------------------------------------------------


def _robust_background(block: ObservationBlock, sd_factor: float) -> tuple[float, float]:
    """Prior mean (median of y) and wide prior sd of a block's background, in block units."""
    y = np.asarray(block.y, dtype=float)
    median = float(np.median(y))
    spread = MAD_TO_SD * float(np.median(np.abs(y - median)))
    scale = max(spread, float(np.median(block.sigma)), 1e-12)
    return median, sd_factor * scale


def _q_prior(gas: str, settings: InversionSettings) -> tuple[bool, float, float]:
    """(is_lognormal, loc, scale) of the emission prior in kg h-1 (log space for lognormal)."""
    median = settings.q_median_kg_h or DEFAULT_Q_MEDIAN_KG_H[gas.upper()]
    if settings.q_prior == "lognormal":
        return True, math.log(median), settings.q_log_sd
    if settings.q_prior == "normal":
        mean = median if settings.q_mean_kg_h is None else settings.q_mean_kg_h
        sd = median if settings.q_sd_kg_h is None else settings.q_sd_kg_h
        return False, mean, sd
    raise ValueError(f"q_prior must be 'lognormal' or 'normal', got {settings.q_prior!r}")


def _wind_priors(winds: Sequence[OverpassWind], stability_sd: float) -> dict[str, np.ndarray]:
    """Per-overpass wind/stability prior parameters (moment-matched log-normal speed, logit stability)."""
    speed = np.array([max(w.speed_m_s, 0.1) for w in winds])
    speed_sd = np.array([max(w.speed_sd_m_s, 1e-3) for w in winds])
    log_var = np.log1p((speed_sd / speed) ** 2)
    stab0 = np.array([w.stability_index for w in winds], dtype=float)
    p0 = np.clip(stab0, 0.25, 4.75) / 5.0
    return {
        "speed0": speed,
        "speed_logmu": np.log(speed) - 0.5 * log_var,
        "speed_logsd": np.sqrt(log_var),
        "dir0": np.array([w.direction_to_rad for w in winds]),
        "dir_sd": np.array([max(w.direction_sd_rad, 1e-3) for w in winds]),
        "stab0": stab0,
        "stab_eta_mu": np.log(p0 / (1.0 - p0)),
        "stab_eta_sd": stability_sd / (5.0 * p0 * (1.0 - p0)),
    }


def _validate(blocks: Sequence[ObservationBlock], winds: Sequence[OverpassWind], gas: str) -> None:
    if not blocks:
        raise ValueError("invert needs at least one ObservationBlock")
    if not winds:
        raise ValueError("invert needs at least one OverpassWind")
    for i, block in enumerate(blocks):
        if block.gas.upper() != gas.upper():
            raise ValueError(f"block {i} ({block.instrument}) is {block.gas}, expected {gas}")
        if not 0 <= block.overpass < len(winds):
            raise ValueError(
                f"block {i} ({block.instrument}): overpass {block.overpass} has no "
                f"OverpassWind (have {len(winds)})"
            )
        if block.size == 0:
            raise ValueError(f"block {i} ({block.instrument}) has no observations")
        if np.any(~np.isfinite(block.y)) or np.any(~(np.asarray(block.sigma) > 0)):
            raise ValueError(f"block {i} ({block.instrument}): y must be finite and sigma > 0")


def _assemble(
    blocks: Sequence[ObservationBlock], bg_mu: np.ndarray, keep: Sequence[np.ndarray] | None = None
) -> tuple[tuple[_Group, ...], np.ndarray]:
    """One group per block with its kept observations (all when ``keep`` is None), and the per-block
    sufficient statistics (3, B) of the others."""
    rest = np.zeros((3, len(blocks)))
    groups = []
    for b, block in enumerate(blocks):
        rows = np.ones(block.size, bool) if keep is None else np.asarray(keep[b], bool)
        inv_var = 1.0 / np.asarray(block.sigma, float)[~rows] ** 2
        resid = np.asarray(block.y, float)[~rows] - bg_mu[b]
        rest[:, b] = inv_var.sum(), (resid * inv_var).sum(), (resid**2 * inv_var).sum()
        n, size = int(rows.sum()), block.weights.shape[1]
        padded = padded_rows(n, size)
        arrays = {
            "y": np.zeros(padded),
            "sigma": np.ones(padded),
            "k": np.zeros(padded),
            "live": np.zeros(padded),
            "points": np.zeros((padded, size, 2)),
            "weights": np.zeros((padded, size)),
        }
        arrays["y"][:n] = np.asarray(block.y, float)[rows] - bg_mu[b]
        arrays["sigma"][:n] = np.asarray(block.sigma, float)[rows]
        arrays["k"][:n] = np.asarray(block.kg_m2_to_obs, float)[rows]
        arrays["live"][:n] = 1.0
        arrays["points"][:n] = np.asarray(block.points_xy_m, float)[rows]
        arrays["weights"][:n] = np.asarray(block.weights, float)[rows]
        groups.append(
            _Group(
                **{name: jnp.asarray(v, jnp.float32) for name, v in arrays.items()},
                block=jnp.asarray(b, jnp.int32),
                overpass=jnp.asarray(block.overpass, jnp.int32),
                sigma_floor_m=jnp.asarray(block.sigma_floor_m, jnp.float32),
            )
        )
    return tuple(groups), rest


def _with_observations(
    data: _Data, blocks: Sequence[ObservationBlock], keep: Sequence[np.ndarray] | None
) -> _Data:
    """``data`` with its observation groups rebuilt from the ``keep`` masks (per block)."""
    groups, rest = _assemble(blocks, np.asarray(data.bg_mu, float), keep)
    return data._replace(groups=groups, **{f"rest_s{i}": jnp.asarray(rest[i], jnp.float32) for i in range(3)})


def _build(
    blocks: Sequence[ObservationBlock], winds: Sequence[OverpassWind], gas: str, settings: InversionSettings
) -> tuple[_Data, _Config]:
    """Observation groups of every observation and the prior hyper-parameters."""
    _validate(blocks, winds, gas)
    q_lognormal, q_loc, q_scale = _q_prior(gas, settings)
    bg = np.array([_robust_background(block, settings.background_sd_factor) for block in blocks])
    groups, rest = _assemble(blocks, bg[:, 0])
    wind = _wind_priors(winds, settings.stability_sd)
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    p = settings.prior_p_source
    data = _Data(
        groups=groups,
        rest_s0=f32(rest[0]),
        rest_s1=f32(rest[1]),
        rest_s2=f32(rest[2]),
        block_n=f32([blk.size for blk in blocks]),
        q_loc=f32(q_loc),
        q_scale=f32(q_scale),
        pos_center=f32(settings.position_prior_xy_m),
        pos_sd=f32(settings.position_sd_m),
        **{k: f32(v) for k, v in wind.items()},
        bg_mu=f32(bg[:, 0]),
        bg_sd=f32(bg[:, 1]),
        infl_log_sd=f32(settings.noise_inflation_log_sd),
        log_prior_odds=f32(math.log(p / (1.0 - p)) if 0 < p < 1 else 0.0),
    )
    config = _Config(
        n_blocks=len(blocks),
        n_overpasses=len(winds),
        q_lognormal=q_lognormal,
        presence=settings.presence and 0 < p < 1,
        fix_wind=settings.fix_wind,
        fix_position=settings.fix_position,
        fix_stability=settings.fix_stability,
        fix_inflation=settings.fix_noise_inflation,
        urban=settings.urban,
    )
    return data, config


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------


def _unpack(z: jax.Array, data: _Data, config: _Config) -> dict[str, jax.Array]:
    """Physical parameters from the whitened latent vector ``z`` (P,)."""
    lay = config.layout()
    zq = z[lay["q"]][0]
    q = jnp.exp(data.q_loc + data.q_scale * zq) if config.q_lognormal else data.q_loc + data.q_scale * zq
    pos = data.pos_center if config.fix_position else data.pos_center + data.pos_sd * z[lay["position"]]
    if config.fix_wind:
        speed, direction = data.speed0, data.dir0
    else:
        speed = jnp.exp(data.speed_logmu + data.speed_logsd * z[lay["speed"]])
        direction = data.dir0 + data.dir_sd * z[lay["direction"]]
    if config.fix_stability:
        stab = data.stab0
    else:
        stab = 5.0 * jax.nn.sigmoid(data.stab_eta_mu + data.stab_eta_sd * z[lay["stability"]])
    background = data.bg_mu + data.bg_sd * z[lay["background"]]
    if config.fix_inflation:
        inflation = jnp.ones(config.n_blocks)
    else:
        inflation = jnp.exp(data.infl_log_sd * z[lay["inflation"]])
    return {
        "emission_rate_if_present_kg_h": q,
        "source_x_m": pos[0],
        "source_y_m": pos[1],
        "wind_speed_m_s": speed,
        "wind_to_direction_rad": direction,
        "wind_u_m_s": speed * jnp.cos(direction),
        "wind_v_m_s": speed * jnp.sin(direction),
        "stability_index": stab,
        "background": background,
        "noise_inflation": inflation,
    }


def _group_predict(phys: dict[str, jax.Array], group: _Group, config: _Config) -> jax.Array:
    """Modelled plume enhancement (n,) of a group's observations in their units, without background."""
    return predict_block(
        group.points,
        group.weights,
        group.k,
        jnp.stack([phys["source_x_m"], phys["source_y_m"]]),
        kg_h_to_kg_s(phys["emission_rate_if_present_kg_h"]),
        phys["wind_u_m_s"][group.overpass],
        phys["wind_v_m_s"][group.overpass],
        phys["stability_index"][group.overpass],
        urban=config.urban,
        sigma_floor_m=group.sigma_floor_m,
    )


def _log_lik_parts(z: jax.Array, data: _Data, config: _Config) -> tuple[jax.Array, jax.Array]:
    """``(log p(y | theta, no source), log p(y | theta, source) - log p(y | theta, no source))``.

    Additive constants (2 pi and the reported sigmas) are dropped. The difference is computed
    directly as ``sum (2 r m - m^2) / (2 s^2)`` (``r`` = y - background, ``m`` = plume) so that it
    does not suffer from cancellation between two large sums. Residuals are taken from the prior
    background, ``r = (y - mu_b) - (B_b - mu_b)``, which keeps them small in float32.
    """
    phys = _unpack(z, data, config)
    offset = data.bg_sd * z[config.layout()["background"]]
    infl = phys["noise_inflation"]
    ll0 = -jnp.sum(data.block_n * jnp.log(infl)) - 0.5 * jnp.sum(
        (data.rest_s2 - 2.0 * offset * data.rest_s1 + offset**2 * data.rest_s0) / infl**2
    )
    delta = jnp.zeros(())
    for group in data.groups:
        model = _group_predict(phys, group, config)
        resid = group.y - offset[group.block]
        inv_var = group.live / (group.sigma * infl[group.block]) ** 2
        ll0 = ll0 - 0.5 * jnp.sum(resid**2 * inv_var)
        delta = delta + 0.5 * jnp.sum((2.0 * resid - model) * model * inv_var)
    return ll0, delta


def _potential(z: jax.Array, data: _Data, config: _Config, kind: str) -> jax.Array:
    """Negative log posterior density (up to a constant) of ``z``.

    ``kind``: "model" (the mixture when presence is on), "present" (source always present),
    "absent" (no source).
    """
    ll0, delta = _log_lik_parts(z, data, config)
    if kind == "absent":
        ll = ll0
    elif kind == "present" or not config.presence:
        ll = ll0 + delta
    else:
        ll = ll0 + _mixture(delta, data.log_prior_odds)
    return 0.5 * jnp.sum(z**2) - ll


def _mixture(delta: jax.Array, log_prior_odds: jax.Array) -> jax.Array:
    """``log((1 - pi) + pi exp(delta)) `` from the prior log-odds ``logit(pi)``."""
    return jnp.logaddexp(0.0, log_prior_odds + delta) - jnp.logaddexp(0.0, log_prior_odds)


def _model(data: _Data, shift: jax.Array, chol: jax.Array, config: _Config) -> None:
    """NumPyro model in Laplace-preconditioned coordinates ``w``: ``z = shift + chol @ w``.

    ``z`` is the whitened latent vector with a standard-normal prior; ``shift`` (P,) and ``chol``
    (P, P) are the MAP and the Cholesky factor of the Laplace covariance, so that the posterior of
    ``w`` is close to a standard normal and NUTS needs short trajectories (a fixed linear change of
    variables: the Jacobian is constant and the posterior of ``z`` is unchanged).
    With ``shift = 0`` and ``chol = I`` this is the plain model.
    """
    w = numpyro.sample("w", dist.ImproperUniform(dist.constraints.real_vector, (), (config.dim,)))
    z = shift + chol @ w
    ll0, delta = _log_lik_parts(z, data, config)
    ll = ll0 + (_mixture(delta, data.log_prior_odds) if config.presence else delta)
    numpyro.factor("log_posterior", ll - 0.5 * jnp.sum(z**2))


_value_and_grad = jax.jit(jax.value_and_grad(_potential), static_argnames=("config", "kind"))


@partial(jax.jit, static_argnames="config")
def predict_groups(z: jax.Array, data: _Data, config: _Config) -> tuple[jax.Array, ...]:
    """The forward model: modelled plume enhancement of every observation group (rows of
    ``data.groups``, observation units, without background) at the whitened parameters ``z``."""
    phys = _unpack(z, data, config)
    return tuple(_group_predict(phys, group, config) for group in data.groups)


def potential_and_gradient(
    z: jax.Array, data: _Data, config: _Config, kind: str = "model"
) -> tuple[jax.Array, jax.Array]:
    """Negative log posterior density of ``z`` and its gradient (what MAP and NUTS evaluate)."""
    return _value_and_grad(z, data, config, kind)


potential = jax.jit(_potential, static_argnames=("config", "kind"))
"""Jitted negative log posterior density of ``z`` (the value of :func:`potential_and_gradient`)."""
_unpack_draws = jax.jit(jax.vmap(_unpack, in_axes=(0, None, None)), static_argnames=("config",))


# ----------------------------------------------------------------------------------------------
# MAP and Laplace
# ----------------------------------------------------------------------------------------------


def _profile_gain(z: jax.Array, data: _Data, config: _Config) -> tuple[jax.Array, jax.Array]:
    """Likelihood gain and best emission (kg h-1) of the geometry in ``z`` with Q profiled out.

    ``z`` must encode Q = 1 kg h-1. With backgrounds at their prior means and no noise inflation, the
    model is linear in Q, so ``Q_hat = sum(r m / s^2) / sum(m^2 / s^2)`` and the gain in log-likelihood
    is ``max(Q_hat, 0)^2 sum(m^2 / s^2) / 2`` (a matched-filter statistic of the plume shape).
    """
    phys = _unpack(z, data, config)
    cross, energy = jnp.zeros(()), jnp.full((), 1e-30)
    for group in data.groups:
        unit = _group_predict(phys, group, config)
        inv_var = group.live / group.sigma**2
        cross = cross + jnp.sum(group.y * unit * inv_var)
        energy = energy + jnp.sum(unit**2 * inv_var)
    q_hat = cross / energy
    return 0.5 * jnp.maximum(q_hat, 0.0) ** 2 * energy, q_hat


_batched_gain = jax.jit(jax.vmap(_profile_gain, in_axes=(0, None, None)), static_argnames=("config",))


def _starts(data: _Data, config: _Config, settings: InversionSettings) -> np.ndarray:
    """Multi-start points in ``z``.

    For each wind rotation (met direction, +-90, 180 degrees) the source positions on a grid over
    +-``map_position_extent_sd`` prior sd are ranked by the Q-profiled likelihood gain
    (:func:`_profile_gain`) plus the log prior density of the position and the profiled Q; the
    ``map_starts_per_direction`` best positions at least one prior sd apart start the optimiser, with
    Q at its profiled value.
    """
    lay = config.layout()
    q_loc, q_scale = float(data.q_loc), float(data.q_scale)
    unit_zq = (0.0 - q_loc) / q_scale if config.q_lognormal else (1.0 - q_loc) / q_scale
    offsets = (0.0,) if config.fix_wind else _DIRECTION_OFFSETS_RAD
    if config.fix_position:
        grid = np.zeros((1, 2))
    else:
        extent = settings.map_position_extent_sd
        axis = np.linspace(-extent, extent, settings.map_position_grid)
        grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    starts = []
    for off in offsets:
        cand = np.zeros((grid.shape[0], config.dim))
        cand[:, lay["q"].start] = unit_zq
        if not config.fix_wind:
            cand[:, lay["direction"]] = off / np.asarray(data.dir_sd)
        if not config.fix_position:
            cand[:, lay["position"]] = grid
        batch = _batched_gain(jnp.asarray(cand, jnp.float32), data, config)
        gain, q_hat = (np.asarray(a, float) for a in batch)
        floor = 1e-6 * math.exp(q_loc) if config.q_lognormal else -np.inf
        q = np.maximum(q_hat, floor)
        with np.errstate(invalid="ignore"):
            zq = (np.log(q) - q_loc) / q_scale if config.q_lognormal else (q - q_loc) / q_scale
        score = gain - 0.5 * np.sum(grid**2, axis=1) - 0.5 * np.minimum(zq**2, 9.0)
        score = np.where(np.isfinite(score), score, -np.inf)
        picked: list[int] = []
        for i in np.argsort(-score):
            if len(picked) == settings.map_starts_per_direction:
                break
            if all(np.max(np.abs(grid[i] - grid[j])) >= 1.0 for j in picked):
                picked.append(int(i))
        for i in picked:
            z0 = cand[i].copy()
            z0[lay["q"].start] = float(np.clip(zq[i], -3.0, 3.0))
            starts.append(z0)
    return np.array(starts)


def _curvature_scale(data: _Data, config: _Config) -> np.ndarray:
    """Approximate posterior sd (P,) of every whitened coordinate, for preconditioning the optimiser.

    Plume parameters get 1 (their prior sd). A block's background and noise-inflation coordinates
    get ``1 / sqrt(1 + a^2 S0)`` and ``1 / sqrt(1 + 2 c^2 n)`` (``a`` the background prior sd, ``S0``
    the sum of ``1/sigma^2``, ``c`` the log-inflation prior sd, ``n`` the observation count): the
    curvature of the no-source potential (:func:`_absent_laplace`) at unit inflation. Their
    curvature is up to ~10^6 times the plume parameters', which stalls L-BFGS in ``z``.
    """
    lay = config.layout()
    s0 = np.asarray(data.rest_s0, float).copy()
    for group in data.groups:
        s0[int(group.block)] += float(np.sum(np.asarray(group.live) / np.asarray(group.sigma, float) ** 2))
    scale = np.ones(config.dim)
    scale[lay["background"]] = 1.0 / np.sqrt(1.0 + np.asarray(data.bg_sd, float) ** 2 * s0)
    if not config.fix_inflation:
        n = np.asarray(data.block_n, float)
        scale[lay["inflation"]] = 1.0 / np.sqrt(1.0 + 2.0 * float(data.infl_log_sd) ** 2 * n)
    return scale


def _lbfgs(
    z0: np.ndarray,
    data: _Data,
    config: _Config,
    kind: str,
    max_steps: int,
    scale: np.ndarray,
    ftol: float,
    gtol: float = 1e-5,
) -> tuple[np.ndarray, float]:
    """L-BFGS on the potential energy from ``z0`` in the coordinates ``z / scale`` (scipy's stopping
    rules: relative reduction of the value below ``ftol``, projected gradient below ``gtol``)."""

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = _value_and_grad(jnp.asarray(x * scale, jnp.float32), data, config, kind)
        value = float(value)
        if not np.isfinite(value):
            return 1e30, np.zeros_like(x)
        return value, np.asarray(grad, dtype=float) * scale

    options = {"maxiter": max_steps, "maxfun": 2 * max_steps, "ftol": ftol, "gtol": gtol}
    res = optimize.minimize(fun, z0 / scale, jac=True, method="L-BFGS-B", options=options)
    return np.asarray(res.x) * scale, float(res.fun)


def _minimise(
    z0: np.ndarray, data: _Data, config: _Config, kind: str, max_steps: int, scale: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """L-BFGS on the potential energy from ``z0``; returns (z_hat, potential).

    With ``scale`` (:func:`_curvature_scale`), a second pass continues in the coordinates
    ``z / scale`` from where the first stopped and never stops on a relative change of the value:
    the potential is summed in float32 (rounding ~1e-4 at values ~1e3), and with background
    coordinates 10^6 times stiffer than the plume's, the first pass can stop where float32 no longer
    resolves its progress, short of the minimum (a saddle of the Hessian, a Laplace fit of sd ~10
    prior sd). The second pass ends on a failed line search or a projected gradient below 0.01 in
    the scaled coordinates; :func:`_newton` does the rest.
    """
    z, value = _lbfgs(z0, data, config, kind, max_steps, np.ones_like(z0), 2.2e-9)
    if scale is None:
        return z, value
    z2, value2 = _lbfgs(z, data, config, kind, max_steps, scale, 0.0, 1e-2)
    return (z2, value2) if value2 <= value else (z, value)


def find_modes(
    data: _Data,
    config: _Config,
    settings: InversionSettings,
    starts: np.ndarray | None = None,
    kind: str = "present",
) -> tuple[list[tuple[np.ndarray, float]], np.ndarray]:
    """Local optima of a multi-start MAP, best first, as (z_hat, potential), and the potential
    reached from each start.

    Every start gets ``map_screen_steps`` L-BFGS iterations; of those, the ``map_keep`` best whose
    potential is within ``map_keep_within`` (log-density units) of the best then run to convergence
    (at most ``map_steps`` iterations): a start that is still e^100 times less probable after the
    screening steps sits in another basin, and polishing it costs up to ten times more iterations
    than the best basin does. Polished optima closer than 0.05 (whitened units) to a better one are
    the same mode and left out. ``kind`` selects the density (see ``_potential``).
    """
    starts = _starts(data, config, settings) if starts is None else np.atleast_2d(starts)
    scale = _curvature_scale(data, config)
    screened = [_minimise(z0, data, config, kind, settings.map_screen_steps) for z0 in starts]
    values = np.array([v for _, v in screened])
    close = values <= values.min() + settings.map_keep_within
    keep = [i for i in np.argsort(values)[: settings.map_keep] if close[i]]
    for i in keep:
        screened[i] = _minimise(screened[i][0], data, config, kind, settings.map_steps, scale)
        values[i] = screened[i][1]
    modes: list[tuple[np.ndarray, float]] = []
    for i in sorted(keep, key=lambda i: values[i]):
        if all(np.max(np.abs(screened[i][0] - z)) > 0.05 for z, _ in modes):
            modes.append(screened[i])
    return modes, values


def find_map(
    data: _Data,
    config: _Config,
    settings: InversionSettings,
    starts: np.ndarray | None = None,
    kind: str = "present",
) -> tuple[np.ndarray, float, np.ndarray]:
    """Best of a multi-start MAP (:func:`find_modes`): (z_hat, potential at z_hat, potential reached
    from each start)."""
    modes, values = find_modes(data, config, settings, starts, kind)
    return modes[0][0], modes[0][1], values


@dataclass(frozen=True)
class _Laplace:
    mean: np.ndarray
    cov: np.ndarray
    log_evidence: float


def _cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a (regularised) covariance."""
    return np.linalg.cholesky(cov + 1e-12 * np.eye(cov.shape[0]))


HESSIAN_STEP_SD = 0.1
"""Central-difference step of :func:`hessian`, in posterior standard deviations of each coordinate."""


def _difference_hessian(
    z: np.ndarray, steps: np.ndarray, data: _Data, config: _Config, kind: str
) -> np.ndarray:
    """Symmetrised central differences of the exact gradient, ``H e_i = (g(z + h_i e_i) - g(z - h_i
    e_i)) / 2 h_i``: ``2P`` calls of the compiled value-and-gradient program."""
    rows = []
    for i, h in enumerate(steps):
        e = np.zeros_like(z)
        e[i] = h
        plus = _value_and_grad(jnp.asarray(z + e, jnp.float32), data, config, kind)[1]
        minus = _value_and_grad(jnp.asarray(z - e, jnp.float32), data, config, kind)[1]
        rows.append((np.asarray(plus, float) - np.asarray(minus, float)) / (2.0 * h))
    hess = np.array(rows)
    return 0.5 * (hess + hess.T)


def hessian(z: np.ndarray, data: _Data, config: _Config, kind: str) -> np.ndarray:
    """Hessian (P, P) of the potential at ``z`` from differences of its exact gradient.

    A first pass with steps of 0.01 (whitened units, prior sd = 1) gives each coordinate's curvature;
    the second steps by ``HESSIAN_STEP_SD`` of that coordinate's sd, ``0.1 / sqrt(H_ii)``: small
    enough for the stiff coordinates (sd ~ 1e-3) and large enough that float32 rounding of the
    gradient stays small for the weak ones (sd ~ 1). Against the second-order autodiff Hessian at
    the MAP: posterior variances within 0.03 % for the coordinates the data constrain and ~3 % for
    the prior-dominated ones, the log-determinant within 0.05. That program takes ~10 s to compile on
    a 2-core CPU; these ``4P`` evaluations take ~0.1 s and compile nothing new.
    """
    z = np.asarray(z, float)
    first = _difference_hessian(z, np.full(z.size, 1e-2), data, config, kind)
    steps = HESSIAN_STEP_SD / np.sqrt(np.clip(np.diag(first), 1e-2, None))
    return _difference_hessian(z, steps, data, config, kind)


NEWTON_STEPS = 5
NEWTON_DECREMENT = 0.01
"""Newton decrement ``g^T |H|^-1 g`` below which an optimum is taken as found (a distance of about
0.1 posterior sd from the minimum, in the Hessian's metric)."""


def _newton(
    z: np.ndarray, potential: float, data: _Data, config: _Config, kind: str
) -> tuple[np.ndarray, float, np.ndarray]:
    """Polish an optimum with Newton steps on the difference Hessian: (z, potential, Hessian at z).

    L-BFGS can stop short of the minimum where float32 no longer resolves its progress (at a saddle
    on stiff, strongly coupled posteriors); at most ``NEWTON_STEPS`` saddle-free Newton steps
    (eigenvalues replaced by their absolute values, Dauphin et al. 2014, NeurIPS 27) follow, each
    halved until the potential does not rise beyond float32 rounding, until the Newton decrement
    ``g^T |H|^-1 g`` is below ``NEWTON_DECREMENT``.
    """
    for _ in range(NEWTON_STEPS + 1):
        hess = hessian(z, data, config, kind)
        grad = np.asarray(_value_and_grad(jnp.asarray(z, jnp.float32), data, config, kind)[1], float)
        evals, evecs = np.linalg.eigh(hess)
        step = -(evecs / np.maximum(np.abs(evals), 1e-3)) @ (evecs.T @ grad)
        if -grad @ step < NEWTON_DECREMENT:
            break
        tolerance = 1e-6 * abs(potential) + 1e-3
        for _ in range(4):
            value = float(potential_and_gradient(jnp.asarray(z + step, jnp.float32), data, config, kind)[0])
            if value <= potential + tolerance:
                z, potential = z + step, value
                break
            step = 0.5 * step
        else:
            break
    return z, potential, hess


def _laplace(z_hat: np.ndarray, potential: float, data: _Data, config: _Config, kind: str) -> _Laplace:
    """Gaussian approximation at the optimum near ``z_hat`` (:func:`_newton`) and its Laplace
    log-evidence (constants dropped)."""
    z_hat, potential, hess = _newton(np.asarray(z_hat, float), potential, data, config, kind)
    evals, evecs = np.linalg.eigh(hess)
    evals = np.maximum(evals, 1e-3)
    cov = (evecs / evals) @ evecs.T
    return _Laplace(mean=z_hat, cov=cov, log_evidence=-potential - 0.5 * float(np.sum(np.log(evals))))


def _absent_laplace(blocks: Sequence[ObservationBlock], data: _Data, config: _Config) -> _Laplace:
    """Laplace approximation of the no-source model, in closed form.

    Without a plume the potential separates: the plume parameters keep their standard-normal prior
    (mode 0, unit Hessian) and each block ``b`` contributes, in its whitened background ``u`` and
    noise-inflation ``v`` coordinates (``off = a u``, ``lambda = exp(c v)``),

        U_b = u^2 / 2 + v^2 / 2 + n c v + Q(off) exp(-2 c v) / 2,  Q = S2 - 2 off S1 + off^2 S0,

    with ``S0, S1, S2`` the sums of ``1/s^2``, ``r/s^2`` and ``r^2/s^2`` of all its residuals from the
    prior background. Each 2-parameter block problem is solved by Newton's method with the exact
    gradient and Hessian, so no JAX program is compiled for it.
    """
    lay = config.layout()
    mean, hess = np.zeros(config.dim), np.eye(config.dim)
    potential = 0.0
    bg_mu, bg_sd, c = np.asarray(data.bg_mu, float), np.asarray(data.bg_sd, float), float(data.infl_log_sd)
    for b, block in enumerate(blocks):
        r = np.asarray(block.y, float) - bg_mu[b]
        w = 1.0 / np.asarray(block.sigma, float) ** 2
        s0, s1, s2, n, a = w.sum(), (r * w).sum(), (r**2 * w).sum(), block.size, bg_sd[b]
        u, v = a * s1 / (1.0 + a * a * s0), 0.0  # exact when the inflation is fixed (v = 0)
        while not config.fix_inflation:
            e, q = math.exp(-2.0 * c * v), s2 - 2.0 * a * u * s1 + (a * u) ** 2 * s0
            slope = a * a * s0 * u - a * s1
            grad = np.array([u + e * slope, v + n * c - c * q * e])
            h = np.array(
                [
                    [1.0 + e * a * a * s0, -2.0 * c * e * slope],
                    [-2.0 * c * e * slope, 1.0 + 2.0 * c * c * q * e],
                ]
            )
            step = np.linalg.solve(h, grad)
            u, v = u - step[0], v - step[1]
            if np.max(np.abs(step)) < 1e-10:
                break
        e, q = math.exp(-2.0 * c * v), s2 - 2.0 * a * u * s1 + (a * u) ** 2 * s0
        potential += 0.5 * (u * u + v * v) + n * c * v + 0.5 * q * e
        ib = lay["background"].start + b
        mean[ib], hess[ib, ib] = u, 1.0 + e * a * a * s0
        if not config.fix_inflation:
            iv = lay["inflation"].start + b
            mean[iv], hess[iv, iv] = v, 1.0 + 2.0 * c * c * q * e
            hess[ib, iv] = hess[iv, ib] = -2.0 * c * e * (a * a * s0 * u - a * s1)
    evals, evecs = np.linalg.eigh(hess)
    cov = (evecs / evals) @ evecs.T
    return _Laplace(mean=mean, cov=cov, log_evidence=-potential - 0.5 * float(np.sum(np.log(evals))))


# ----------------------------------------------------------------------------------------------
# NUTS
# ----------------------------------------------------------------------------------------------

class _ChainRunner:
    """One chain, ``(key, w0, model_args, proposal, tries) -> (w draws, divergences, leapfrog steps,
    jump accepted)``, compiled ahead of time once per argument shape (under a lock), so that several
    threads can run chains of the same executable at once without tracing it concurrently."""

    def __init__(self, run: Any) -> None:
        self._jitted = jax.jit(run)
        self._executables: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> tuple[jax.Array, ...]:
        leaves, tree = jax.tree.flatten(args)
        signature = (tree, tuple((x.shape, str(x.dtype)) for x in leaves))
        with self._lock:
            if signature not in self._executables:
                self._executables[signature] = self._jitted.lower(*args).compile()
        return self._executables[signature](*args)


class _Proposal(NamedTuple):
    """Mode-jumping proposal: a mixture of Gaussians in the preconditioned coordinates ``w`` (a JAX
    pytree). Unused slots have ``log_weights = -inf``, so every event of a given chain count has the
    same shapes and one compiled sampler."""

    means: jax.Array  # (K, P)
    chols: jax.Array  # (K, P, P) lower Cholesky factors of the component covariances
    inv_chols: jax.Array  # (K, P, P)
    log_dets: jax.Array  # (K,) sum of log diag(chols)
    log_weights: jax.Array  # (K,)


def _proposal(
    components: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float] | None = None
) -> _Proposal:
    """The mixture of ``components`` ((mean, covariance) in ``w``; equal weights unless given), each
    widened by ``JUMP_WIDEN`` in sd, padded to ``PROPOSAL_SLOTS`` components (the first ones kept)."""
    dim, slots = components[0][0].size, PROPOSAL_SLOTS
    components = list(components)[:slots]
    weights = np.ones(len(components)) if weights is None else np.asarray(weights, float)[:slots]
    means, chols = np.zeros((slots, dim)), np.tile(np.eye(dim), (slots, 1, 1))
    log_weights = np.full(slots, -np.inf)
    log_weights[: len(components)] = np.log(weights / weights.sum())
    for k, (mean, cov) in enumerate(components):
        means[k], chols[k] = mean, JUMP_WIDEN * _cholesky(cov)
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    return _Proposal(
        means=f32(means),
        chols=f32(chols),
        inv_chols=f32(np.linalg.inv(chols)),
        log_dets=f32(np.log(np.diagonal(chols, axis1=1, axis2=2)).sum(axis=1)),
        log_weights=f32(log_weights),
    )


def _component_log_densities(w: jax.Array, proposal: _Proposal) -> jax.Array:
    """Log density (K,) of each mixture component at ``w``, without its weight (constants dropped)."""
    white = jnp.einsum("kij,kj->ki", proposal.inv_chols, w[None, :] - proposal.means)
    return -proposal.log_dets - 0.5 * jnp.sum(white**2, axis=1)


def _proposal_log_density(w: jax.Array, proposal: _Proposal) -> jax.Array:
    """Log density of the mixture at ``w`` (constants dropped)."""
    return jax.nn.logsumexp(proposal.log_weights + _component_log_densities(w, proposal))


_batched_component_log_densities = jax.jit(jax.vmap(_component_log_densities, in_axes=(0, None)))


JUMP_WIDEN = 1.2
"""Standard-deviation factor of every mode-jumping proposal component (heavier tails than the
modes they approximate keep the independence proposal's weights bounded)."""
PROPOSAL_SLOTS = 32
"""Most components of a mode-jumping proposal (one compiled sampler for any number up to this)."""

_SAMPLERS: OrderedDict[tuple, _ChainRunner] = OrderedDict()
_SAMPLER_CACHE_SIZE = 8


def _sampler(
    config: _Config, warmup: int, samples: int, accept: float, depth: int, jumps: bool
) -> _ChainRunner:
    """The chain runner for this model structure, cached per process.

    The runner is one compiled program, ``(key, w0, model_args, proposal, tries) -> (w draws,
    divergences, leapfrog steps, jump accepted)``: the kernel's initialisation at ``w0``, ``warmup``
    adaptation steps (step size and diagonal mass matrix, the kernel's own schedule) then ``samples`` draws,
    both as ``lax.scan``. Every NUTS transition is followed by a mode-jumping Metropolis-Hastings
    step with an independence proposal from the Gaussian mixture ``proposal`` (Tjelmeland & Hegstad
    2001, Scand. J. Stat. 28, 205): NUTS explores within a mode, and the jump moves a chain between
    modes separated by low-density regions that Hamiltonian trajectories do not cross, with the
    acceptance ratio ``p(w') q(w) / (p(w) q(w'))``. Both steps leave the posterior invariant, so
    their composition does too. ``tries`` such Metropolis-Hastings steps follow each transition
    (each invariant, so their sequence is); ``jumps=False`` leaves the jumps out (plain NUTS).

    It is compiled once per problem shape and reused by every later event and chain (``MCMC.run``
    compiles its collection loop again on every call, which also grows JIT code memory without bound
    in a long-lived process). Initialising inside the program matters: run eagerly, the kernel's
    initialisation evaluates the model operation by operation, one small compilation each.
    """
    key = (config, warmup, samples, accept, depth, jumps)
    if key in _SAMPLERS:
        _SAMPLERS.move_to_end(key)
        return _SAMPLERS[key]
    kernel = NUTS(partial(_model, config=config), target_accept_prob=accept, max_tree_depth=depth)

    def run(
        key: jax.Array, w0: jax.Array, model_args: tuple, proposal: _Proposal, tries: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        nuts_key, jump_key = jax.random.split(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            state = kernel.init(nuts_key, warmup, {"w": w0}, model_args, {})
        potential_fn = kernel.get_potential_fn(model_args, {})

        def attempt(i: jax.Array, carry: tuple) -> tuple:
            w, energy, log_q, moved, key = carry
            k_component, k_noise, k_accept = jax.random.split(jax.random.fold_in(key, i), 3)
            component = jax.random.categorical(k_component, proposal.log_weights)
            noise = jax.random.normal(k_noise, (config.dim,))
            w_new = proposal.means[component] + proposal.chols[component] @ noise
            energy_new = potential_fn({"w": w_new})
            log_q_new = _proposal_log_density(w_new, proposal)
            log_ratio = energy - energy_new + log_q - log_q_new
            accepted = jnp.log(jax.random.uniform(k_accept)) < log_ratio  # NaN: rejected
            kept = jax.tree.map(
                partial(jnp.where, accepted), (w_new, energy_new, log_q_new), (w, energy, log_q)
            )
            return (*kept, moved | accepted, key)

        def jump(state: Any, key: jax.Array) -> tuple[Any, jax.Array]:
            w_old = state.z["w"]
            log_q = _proposal_log_density(w_old, proposal)
            start = (w_old, state.potential_energy, log_q, jnp.zeros((), bool), key)
            w, _, _, moved, _ = jax.lax.fori_loop(0, tries, attempt, start)
            state = jax.lax.cond(
                moved,
                lambda s: kernel.refresh(s._replace(z={"w": w}), model_args, {}),
                lambda s: s,
                state,
            )
            return state, moved

        def step(carry: tuple[Any, jax.Array], _: None) -> tuple[tuple[Any, jax.Array], tuple]:
            state, key = carry
            key, k_jump = jax.random.split(key)
            state = kernel.sample(state, model_args, {})
            moved, accepted = jump(state, k_jump) if jumps else (state, jnp.zeros((), bool))
            return (moved, key), (moved.z["w"], state.diverging, state.num_steps, accepted)

        carry, _ = jax.lax.scan(step, (state, jump_key), None, length=warmup)
        return jax.lax.scan(step, carry, None, length=samples)[1]

    _SAMPLERS[key] = _ChainRunner(run)
    while len(_SAMPLERS) > _SAMPLER_CACHE_SIZE:
        _SAMPLERS.popitem(last=False)
    return _SAMPLERS[key]


_BATCH = 256
_batched_parts = jax.jit(jax.vmap(_log_lik_parts, in_axes=(0, None, None)), static_argnames="config")


def _log_lik_batch(z: np.ndarray, data: _Data, config: _Config) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_log_lik_parts` ``(log p(y | theta, no source), log Bayes factor of the source)`` of
    points ``z`` (..., P), each of shape ``z.shape[:-1]``, in fixed-size chunks (one compilation)."""
    flat = z.reshape(-1, z.shape[-1])
    out = np.empty((2, flat.shape[0]))
    for start in range(0, flat.shape[0], _BATCH):
        chunk = flat[start:start + _BATCH]
        padded = np.concatenate([chunk, np.zeros((_BATCH - chunk.shape[0], chunk.shape[1]))])
        parts = _batched_parts(jnp.asarray(padded, jnp.float32), data, config)
        out[:, start:start + chunk.shape[0]] = np.asarray(parts)[:, : chunk.shape[0]]
    return out[0].reshape(z.shape[:-1]), out[1].reshape(z.shape[:-1])


def _log_bayes_factors(z: np.ndarray, data: _Data, config: _Config) -> np.ndarray:
    """``log p(y | theta, source) - log p(y | theta, no source)`` of draws ``z`` (..., P)."""
    return _log_lik_batch(z, data, config)[1]


def _log_posterior_batch(z: np.ndarray, data: _Data, config: _Config) -> np.ndarray:
    """Log posterior density (the model's, constants dropped) of points ``z`` (N, P)."""
    ll0, delta = _log_lik_batch(z, data, config)
    source = np.asarray(_mixture(delta, float(data.log_prior_odds)), float) if config.presence else delta
    return ll0 + source - 0.5 * np.sum(z**2, axis=-1)


class _Chains(NamedTuple):
    """Output of :func:`_run_nuts`, per chain and draw (C, D, ...)."""

    w: np.ndarray  # (C, D, P) preconditioned coordinates
    z: np.ndarray  # (C, D, P) whitened coordinates
    log_bf: np.ndarray  # (C, D) log Bayes factor of source presence
    diverging: np.ndarray  # (C, D)
    steps: np.ndarray  # (C, D) leapfrog steps
    jumped: np.ndarray  # (C, D) mode jump accepted


def _run_nuts(
    data: _Data,
    config: _Config,
    lap: _Laplace,
    init: np.ndarray,
    proposal: _Proposal,
    warmup: int,
    accept: float,
    settings: InversionSettings,
    key: Any,
    tries: int = 1,
) -> _Chains:
    """NUTS with mode-jumping steps (:func:`_sampler`) from ``init`` (C, P), the chains' starting
    points in the preconditioned coordinates ``w`` of ``lap``.

    Chains run in one thread per CPU core, each through the same compiled program (one chain per
    call: batching chains in one program makes every chain wait for the longest trajectory); each
    chain has its own key, so the draws do not depend on the number of threads.
    """
    shift, chol = lap.mean, _cholesky(lap.cov)
    run = _sampler(config, warmup, settings.num_samples, accept, settings.max_tree_depth, settings.mode_jumps)
    model_args = (data, jnp.asarray(shift, jnp.float32), jnp.asarray(chol, jnp.float32))
    keys = jax.random.split(key, settings.num_chains)
    jobs = [
        (keys[c], jnp.asarray(init[c], jnp.float32), model_args, proposal, jnp.asarray(tries, jnp.int32))
        for c in range(settings.num_chains)
    ]
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        chains = list(pool.map(lambda job: [np.asarray(x) for x in run(*job)], jobs))
    w, diverging, steps, jumped = (np.stack([chain[i] for chain in chains]) for i in range(4))
    w = w.astype(float)
    z = shift + w @ chol.T
    return _Chains(w, z, _log_bayes_factors(z, data, config), diverging, steps, jumped)


ADAPT_ROUNDS = 3
ADAPT_DRAWS = 1024
MIN_PROPOSAL_WEIGHT = 0.01


def _adapted_weights(
    proposal: _Proposal,
    shift: np.ndarray,
    chol: np.ndarray,
    data: _Data,
    config: _Config,
    rng: np.random.Generator,
) -> np.ndarray:
    """Weights of the mode-jumping mixture adapted to the posterior by importance sampling.

    An independence proposal mixes as well as its weights match the posterior mass of the modes
    its components cover: a mode given ``r`` times too little weight is entered ``r`` times too
    rarely and left with probability ``~r``. Each of ``ADAPT_ROUNDS`` rounds draws ``ADAPT_DRAWS``
    points from the mixture, weights them by ``p(w) / q(w)`` and sets every component's weight to the
    importance-weighted mean of its responsibility ``alpha_k q_k(w) / q(w)`` (the weight update of
    M-PMC, Cappe, Douc, Guillin, Marin & Robert 2008, Stat. Comput. 18, 447), kept above
    ``MIN_PROPOSAL_WEIGHT`` so that no mode becomes unreachable. ``data`` must be what the chains
    sample (``shift``, ``chol``: their preconditioning ``z = shift + chol @ w``).
    """
    means = np.asarray(proposal.means, float)
    chols = np.asarray(proposal.chols, float)
    alpha = np.exp(np.asarray(proposal.log_weights, float))
    used = alpha > 0
    for _ in range(ADAPT_ROUNDS):
        component = rng.choice(alpha.size, size=ADAPT_DRAWS, p=alpha / alpha.sum())
        noise = rng.standard_normal((ADAPT_DRAWS, means.shape[1]))
        w = means[component] + np.einsum("nij,nj->ni", chols[component], noise)
        densities = np.asarray(_batched_component_log_densities(jnp.asarray(w, jnp.float32), proposal), float)
        with np.errstate(divide="ignore"):
            log_qk = np.log(alpha)[None] + densities
        log_q = np.logaddexp.reduce(log_qk, axis=1)
        log_p = _log_posterior_batch(shift + w @ chol.T, data, config)
        log_iw = np.where(np.isfinite(log_p), log_p - log_q, -np.inf)
        if not np.isfinite(log_iw).any():
            break
        iw = np.exp(log_iw - log_iw.max())
        responsibility = np.exp(log_qk - log_q[:, None])
        alpha = np.where(used, np.maximum((iw @ responsibility) / iw.sum(), MIN_PROPOSAL_WEIGHT), 0.0)
        alpha /= alpha.sum()
    return alpha


def _in_coordinates(lap: _Laplace, other: _Laplace) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the Gaussian ``other`` in the preconditioned coordinates ``w`` of ``lap``
    (``z = lap.mean + L w``)."""
    inv = np.linalg.inv(_cholesky(lap.cov))
    return inv @ (other.mean - lap.mean), inv @ other.cov @ inv.T


def _draws_gaussian(z: np.ndarray) -> _Laplace:
    """Mean and covariance of draws ``z`` (C, D, P) (no evidence): the escalated run's preconditioner.

    The Laplace fit at the MAP describes one mode; when the chains failed to converge, the posterior
    they explored is wider (other modes, the no-source plateau), and preconditioning by its moments
    shortens the Hamiltonian trajectories that cross it."""
    flat = z.reshape(-1, z.shape[-1])
    return _Laplace(mean=flat.mean(axis=0), cov=np.cov(flat, rowvar=False) + 1e-9 * np.eye(flat.shape[1]),
                    log_evidence=float("nan"))


def _reexpressed(
    components: Sequence[tuple[np.ndarray, np.ndarray]], old: _Laplace, new: _Laplace
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Gaussians (mean, covariance) in the preconditioned coordinates of ``old`` expressed in those of
    ``new`` (``z = mean + L w`` for each)."""
    inv = np.linalg.inv(_cholesky(new.cov))
    a, b = inv @ _cholesky(old.cov), inv @ (old.mean - new.mean)
    return [(a @ m + b, a @ c @ a.T) for m, c in components]


CLUSTER_RADIUS = 1.0
"""Draws whose source position and wind directions are all within this many prior sd of a cluster's
leader belong to the same mode (:func:`_draw_components`)."""


def _draw_components(
    chains: _Chains, config: _Config
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Gaussian components (mean, covariance in ``w``) and weights describing a run's draws, for the
    mode-jumping proposal of the next run.

    The draws the no-source component explains better (log Bayes factor <= 0) form one component;
    the others are grouped by leader clustering in the whitened source position and wind directions
    (leaders taken in order of decreasing Bayes factor, ``CLUSTER_RADIUS`` apart), so every mode any
    chain visited becomes a component, whether or not the MAP found it. Each component's weight is
    its share of the draws; its covariance is that of its draws shrunk towards the covariance of all
    source-present draws with the weight of ``P + 2`` draws, so that a mode visited briefly still
    gets a full-rank Gaussian. The largest groups come first.
    """
    w = chains.w.reshape(-1, chains.w.shape[-1])
    z = chains.z.reshape(-1, chains.z.shape[-1])
    log_bf = chains.log_bf.ravel()
    lay = config.layout()
    geometry = [lay[name] for name in ("position", "direction") if name in lay]
    features = np.concatenate([z[:, sl] for sl in geometry] or [np.zeros((z.shape[0], 1))], axis=1)
    present = log_bf > 0.0 if config.presence else np.ones(log_bf.size, bool)
    groups = [np.flatnonzero(~present)]
    order = np.flatnonzero(present)[np.argsort(-log_bf[present], kind="stable")]
    leaders: list[int] = []
    for i in order:
        if not leaders or np.max(np.abs(features[i] - features[leaders]), axis=1).min() > CLUSTER_RADIUS:
            leaders.append(int(i))
    if leaders:
        distance = np.max(np.abs(features[order][:, None, :] - features[leaders][None]), axis=2)
        label = np.argmin(distance, axis=1)
        groups += [order[label == k] for k in range(len(leaders))]
    groups = sorted((g for g in groups if g.size), key=len, reverse=True)
    pooled = np.cov(w[present] if present.sum() > 1 else w, rowvar=False) + 1e-6 * np.eye(w.shape[1])
    prior_n = w.shape[1] + 2.0
    components = []
    for g in groups:
        scatter = (g.size - 1) * np.cov(w[g], rowvar=False) if g.size > 1 else 0.0
        components.append((w[g].mean(axis=0), (scatter + prior_n * pooled) / (g.size - 1 + prior_n)))
    return components, np.array([g.size for g in groups], float)


# ----------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------


def _quantiles(x: np.ndarray) -> dict[str, float]:
    x = np.ravel(np.asarray(x, dtype=float))
    p05, p50, p95 = np.percentile(x, [5.0, 50.0, 95.0])
    return {
        "mean": float(np.mean(x)),
        "sd": float(np.std(x, ddof=1)) if x.size > 1 else 0.0,
        "p05": float(p05),
        "p50": float(p50),
        "p95": float(p95),
    }


@dataclass
class InversionResult:
    """Posterior of one inversion.

    ``draws`` maps names to arrays (chain, draw, ...): ``emission_rate_kg_h`` (0 in the no-source
    component), ``emission_rate_if_present_kg_h``, ``source_present`` (0/1), ``p_source_conditional``,
    ``source_x_m``, ``source_y_m`` (local frame, m), per overpass ``wind_u_m_s``, ``wind_v_m_s``,
    ``wind_speed_m_s``, ``wind_to_direction_rad``, ``stability_index``, per block ``background``
    (block units, see ``block_units``) and ``noise_inflation`` (1). ``latent`` holds the whitened
    draws ``z`` (chain, draw, P) the physical ones were computed from.
    """

    gas: str
    draws: dict[str, np.ndarray]
    p_source: float
    map_values: dict[str, Any]
    map_log_density: float
    laplace: dict[str, float]
    diagnostics: dict[str, Any]
    method: str
    instruments: tuple[str, ...]
    block_units: tuple[str, ...]
    observed: tuple[np.ndarray, ...]
    settings: InversionSettings = field(repr=False)
    latent: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0, 0)))

    def summary(self) -> dict[str, Any]:
        """Posterior summary in the output-table columns (emission in kg h-1, positions in m).

        ``detected`` is ``p_source >= 0.5`` and ``emission_rate_kg_h_p05 > 0``: the source is more
        likely present than not, and fewer than 5 % of draws fall in the no-source component (or, with
        the presence indicator off, the 90 % interval excludes zero).
        """
        q = _quantiles(self.draws["emission_rate_kg_h"])
        x = np.ravel(self.draws["source_x_m"])
        y = np.ravel(self.draws["source_y_m"])
        return {
            "emission_rate_kg_h": q["mean"],
            "emission_rate_kg_h_p05": q["p05"],
            "emission_rate_kg_h_p50": q["p50"],
            "emission_rate_kg_h_p95": q["p95"],
            "emission_rate_kg_h_sd": q["sd"],
            "source_x_m": float(np.mean(x)),
            "source_y_m": float(np.mean(y)),
            "source_location_sd_m": float(np.sqrt(0.5 * (np.var(x) + np.var(y)))),
            "p_source": float(self.p_source),
            "detected": bool(self.p_source >= 0.5 and q["p05"] > 0.0),
            "r_hat_max": self.diagnostics["r_hat_max"],
            "ess_bulk_min": self.diagnostics["ess_bulk_min"],
            "divergences": self.diagnostics["divergences"],
            "converged": self.diagnostics["converged"],
            "method": self.method,
            "instruments": ",".join(self.instruments),
        }

    def to_inference_data(self):
        """ArviZ InferenceData with ``posterior``, ``sample_stats`` and ``observed_data`` groups."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import arviz as az
        stats_names = ("diverging", "p_source_conditional", "log_bayes_factor")
        posterior = {k: v for k, v in self.draws.items() if k not in stats_names}
        stats = {k: self.draws[k] for k in stats_names if k in self.draws}
        dims = {
            "wind_u_m_s": ["overpass"],
            "wind_v_m_s": ["overpass"],
            "wind_speed_m_s": ["overpass"],
            "wind_to_direction_rad": ["overpass"],
            "stability_index": ["overpass"],
            "background": ["block"],
            "noise_inflation": ["block"],
        }
        observed = {f"y_block{i}": np.asarray(y) for i, y in enumerate(self.observed)}
        dims.update({f"y_block{i}": [f"obs_block{i}"] for i in range(len(self.observed))})
        attrs = {
            "gas": self.gas,
            "method": self.method,
            "p_source": float(self.p_source),
            "instruments": ",".join(self.instruments),
            "block_units": ",".join(self.block_units),
            "converged": int(bool(self.diagnostics["converged"])),
        }
        return az.from_dict(
            posterior=posterior,
            sample_stats=stats,
            observed_data=observed,
            coords={"block": [f"{i}:{name}" for i, name in enumerate(self.instruments)]},
            dims=dims,
            attrs=attrs,
        )


def _physical_draws(z: np.ndarray, data: _Data, config: _Config) -> dict[str, np.ndarray]:
    """Physical draws (C, D, ...) from whitened draws z (C, D, P)."""
    chains, draws, dim = z.shape
    flat = _unpack_draws(jnp.asarray(z.reshape(-1, dim), jnp.float32), data, config)
    return {k: np.asarray(v).reshape((chains, draws) + np.shape(v)[1:]) for k, v in flat.items()}


def _presence_draws(
    phys: dict[str, np.ndarray],
    log_bf: np.ndarray,
    config: _Config,
    log_prior_odds: float,
    rng: np.random.Generator,
) -> float:
    """Draw the indicator from its conditional per draw; adds the emission draws; returns P(source | y)."""
    if config.presence:
        p_cond = 1.0 / (1.0 + np.exp(-np.clip(log_prior_odds + log_bf.astype(float), -700, 700)))
    else:
        p_cond = np.ones_like(log_bf, dtype=float)
    present = rng.uniform(size=p_cond.shape) < p_cond
    phys["p_source_conditional"] = p_cond
    phys["source_present"] = present.astype(np.int8)
    phys["emission_rate_kg_h"] = np.where(present, phys["emission_rate_if_present_kg_h"], 0.0)
    return float(np.mean(p_cond))


def _laplace_summary(
    lap: _Laplace, p_source: float, data: _Data, config: _Config, settings: InversionSettings
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Laplace draws (1, n, ...) and their summary; the indicator uses the Laplace evidence ratio."""
    rng = np.random.default_rng([settings.seed, 1])
    chol = _cholesky(lap.cov)
    z = lap.mean + rng.standard_normal((settings.laplace_draws, lap.mean.size)) @ chol.T
    phys = _physical_draws(z[None], data, config)
    present = rng.uniform(size=(1, settings.laplace_draws)) < p_source
    phys["source_present"] = present.astype(np.int8)
    phys["p_source_conditional"] = np.full(present.shape, p_source)
    phys["emission_rate_kg_h"] = np.where(present, phys["emission_rate_if_present_kg_h"], 0.0)
    q = _quantiles(phys["emission_rate_kg_h"])
    summary = {f"emission_rate_kg_h_{k}": v for k, v in q.items()}
    for name in ("source_x_m", "source_y_m"):
        summary[f"{name}_mean"] = float(np.mean(phys[name]))
        summary[f"{name}_sd"] = float(np.std(phys[name]))
    summary["p_source"] = float(p_source)
    return summary, {"z": z[None], **phys}


def _to_numpy(values: dict[str, jax.Array]) -> dict[str, Any]:
    return {k: (float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float)) for k, v in values.items()}


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def prepare(
    blocks: Sequence[ObservationBlock], winds: Sequence[OverpassWind], gas: str, settings: InversionSettings
) -> tuple[_Data, _Config]:
    """The observation groups, priors and static structure of the problem (for :func:`find_map`,
    :func:`predict_groups` and tests)."""
    return _build(blocks, winds, gas, settings)


def unpack(z: np.ndarray, data: _Data, config: _Config) -> dict[str, Any]:
    """Physical parameters (numpy) of one whitened latent vector ``z``."""
    return _to_numpy(_unpack(jnp.asarray(z, jnp.float32), data, config))


def invert(
    blocks: Sequence[ObservationBlock],
    winds: Sequence[OverpassWind],
    gas: str,
    settings: InversionSettings = InversionSettings(),
) -> InversionResult:
    """Posterior of (emission rate, source position, per-overpass wind, backgrounds) for one event.

    ``blocks``: observation blocks (any instruments, native resolution); ``winds``: one met prior per
    overpass (``block.overpass`` indexes it); ``gas``: "CH4" or "CO2". Deterministic for a given
    ``settings.seed``.
    """
    t_start = time.perf_counter()
    data, config = _build(blocks, winds, gas, settings)
    modes, _ = find_modes(data, config, settings)
    z_map, u_map = modes[0]
    lap = _laplace(z_map, u_map, data, config, "present")
    fits = [lap]
    if config.presence:
        lap0 = _absent_laplace(blocks, data, config)
        log_odds = float(data.log_prior_odds) + lap.log_evidence - lap0.log_evidence
        p_laplace = float(1.0 / (1.0 + math.exp(-min(max(log_odds, -700.0), 700.0))))
        # the dominant component's Laplace fit preconditions NUTS; both propose mode jumps
        fits = [lap, lap0] if p_laplace >= 0.5 else [lap0, lap]
    else:
        p_laplace = 1.0
    laplace_summary, laplace_draws = _laplace_summary(lap, p_laplace, data, config, settings)
    map_values = _to_numpy(_unpack(jnp.asarray(z_map, jnp.float32), data, config))
    t_map = time.perf_counter()

    rng = np.random.default_rng([settings.seed, 2])
    if settings.sampler == "laplace":
        z, phys = laplace_draws["z"], {k: v for k, v in laplace_draws.items() if k != "z"}
        p_source = p_laplace
        diag = {
            "r_hat_max": float("nan"),
            "ess_bulk_min": float("nan"),
            "ess_tail_min": float("nan"),
            "divergences": 0,
            "converged": False,
            "escalated": False,
            "escalation_stages": 0,
        }
        method = "gaussian-plume multi-start MAP + Laplace"
    elif settings.sampler == "nuts":
        fits += [_laplace(z, u, data, config, "present") for z, u in modes[1:]]
        z, phys, p_source, diag = _sample(data, config, fits[0], fits[1:], settings, rng, blocks)
        method = (
            f"gaussian-plume NUTS ({settings.num_chains} chains x {settings.num_samples}, "
            f"MAP/Laplace init{', presence marginalised' if config.presence else ''})"
        )
    else:
        raise ValueError(f"sampler must be 'nuts' or 'laplace', got {settings.sampler!r}")
    diag.update(map_laplace_s=t_map - t_start, sampling_s=time.perf_counter() - t_map)
    return InversionResult(
        gas=gas.upper(),
        draws=phys,
        p_source=p_source,
        map_values=map_values,
        map_log_density=-u_map,
        laplace=laplace_summary,
        diagnostics=diag,
        method=method,
        instruments=tuple(b.instrument for b in blocks),
        block_units=tuple(b.units for b in blocks),
        observed=tuple(np.asarray(b.y) for b in blocks),
        settings=settings,
        latent=z,
    )


def posterior_predictive(
    result: InversionResult,
    blocks: Sequence[ObservationBlock],
    winds: Sequence[OverpassWind],
    n_draws: int = 64,
) -> list[dict[str, np.ndarray]]:
    """Posterior-predictive mean and sd of every observation, per block, in block units.

    For ``n_draws`` posterior draws spread evenly over the chains, the modelled observation is the
    block background plus, when the draw's source indicator is 1, the plume; ``mean`` and ``sd``
    (n_b,) summarise it over the draws (the sd is that of the expected value, without observation
    noise). ``blocks`` and ``winds`` must be those the result was computed from.
    """
    data, config = _build(blocks, winds, result.gas, result.settings)
    flat = result.latent.reshape(-1, result.latent.shape[-1])
    picks = np.linspace(0, flat.shape[0] - 1, min(n_draws, flat.shape[0])).astype(int)
    present = np.ravel(result.draws["source_present"])[picks]
    background = np.asarray(result.draws["background"]).reshape(flat.shape[0], -1)[picks]
    samples = [np.empty((picks.size, b.size)) for b in blocks]
    for i, (z, on) in enumerate(zip(flat[picks], present, strict=True)):
        plume = predict_groups(jnp.asarray(z, jnp.float32), data, config)
        for b, block in enumerate(blocks):
            samples[b][i] = background[i, b] + on * np.asarray(plume[b], float)[: block.size]
    return [{"mean": x.mean(axis=0), "sd": x.std(axis=0)} for x in samples]


SCREENING_SIGMA = 1e-3
"""An observation is evaluated by NUTS when its plume contribution can reach this fraction of its
noise under the widened Laplace approximation."""
SCREENING_WIDEN = 2.5
SCREENING_DRAWS = 64
SCREENING_MIN_POINTS = 16_384
"""Problems with at most this many quadrature points are sampled whole: screening would save little,
and the screened subsets' varying sizes would make NUTS compile again for many events."""


@partial(jax.jit, static_argnames="config")
def _plume_sigma(z: jax.Array, data: _Data, config: _Config) -> tuple[jax.Array, ...]:
    """Plume contribution of every observation in units of its reported sigma, per group (n,)."""
    phys = _unpack(z, data, config)
    return tuple(jnp.abs(_group_predict(phys, g, config)) / g.sigma for g in data.groups)


def _max_plume_sigma(
    zs: np.ndarray, data: _Data, config: _Config, blocks: Sequence[ObservationBlock]
) -> list[np.ndarray]:
    """Largest plume contribution (in sigma) over the parameter draws ``zs`` (K, P), per block (n_b,).

    ``data`` must hold every observation (as built by :func:`_build`)."""
    worst = [np.zeros(b.size) for b in blocks]
    for z in zs:
        per_group = [np.asarray(v) for v in _plume_sigma(jnp.asarray(z, jnp.float32), data, config)]
        worst = [np.maximum(w, v[: w.size]) for w, v in zip(worst, per_group, strict=True)]
    return worst


def _screen(
    data: _Data,
    config: _Config,
    lap: _Laplace,
    settings: InversionSettings,
    blocks: Sequence[ObservationBlock],
) -> list[np.ndarray]:
    """Observations whose plume contribution can matter, per block: any of ``SCREENING_DRAWS`` draws
    from the Laplace approximation widened ``SCREENING_WIDEN`` times brings them above
    ``SCREENING_SIGMA``."""
    rng = np.random.default_rng([settings.seed, 4])
    chol = _cholesky(lap.cov)
    w = SCREENING_WIDEN * rng.standard_normal((SCREENING_DRAWS, lap.mean.size))
    zs = np.vstack([lap.mean[None, :], lap.mean[None, :] + w @ chol.T])
    return [m > SCREENING_SIGMA for m in _max_plume_sigma(zs, data, config, blocks)]


def _escalation_proposal(
    fits: list[tuple[np.ndarray, np.ndarray]], chains: _Chains, config: _Config
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Components and weights of an escalated run's mode-jumping proposal, in the coordinates of
    ``chains``: the previous run's draws (:func:`_draw_components`, weighted by their share) and the
    Laplace fits ``fits`` (a small weight each, so modes no chain visited can still be reached);
    :func:`_adapted_weights` then matches the weights to the posterior."""
    drawn, share = _draw_components(chains, config)
    room = PROPOSAL_SLOTS - len(fits)
    weights = np.r_[share[:room] / max(share[:room].sum(), 1.0), np.full(len(fits), 0.05)]
    return drawn[:room] + fits, weights


def _adapt(
    proposal: _Proposal, lap: _Laplace, data: _Data, config: _Config, settings: InversionSettings
) -> _Proposal:
    """``proposal`` with its weights adapted to the posterior (:func:`_adapted_weights`)."""
    rng = np.random.default_rng([settings.seed, 5])
    alpha = _adapted_weights(proposal, lap.mean, _cholesky(lap.cov), data, config, rng)
    with np.errstate(divide="ignore"):
        return proposal._replace(log_weights=jnp.asarray(np.log(alpha), jnp.float32))


ESCALATION_STAGES = 2
"""Runs of the escalation: each starts where the previous one ended, is preconditioned by the
moments of its draws and jumps with a proposal built from them (:func:`_escalation_proposal`);
the draws of the last are the posterior."""
ESCALATION_MAX_STAGES = 3
"""Runs of the escalation at most: after ``ESCALATION_STAGES``, another runs while the diagnostics
of the last still fail (on the sample null scene, whose tail ESS after two runs ranges from below
400 to ~1,000 with floating-point details)."""


def _ess_target(settings: InversionSettings) -> float:
    """Bulk/tail ESS required for convergence: 400, or a quarter of the draws for short test runs."""
    return min(ESS_THRESHOLD, 0.25 * settings.num_chains * settings.num_samples)


def _sample(
    data: _Data,
    config: _Config,
    lap: _Laplace,
    others: Sequence[_Laplace],
    settings: InversionSettings,
    rng: np.random.Generator,
    blocks: Sequence[ObservationBlock],
) -> tuple[np.ndarray, dict[str, np.ndarray], float, dict[str, Any]]:
    """NUTS from Laplace draws around the MAP, diagnostics, and one escalation if needed.

    ``lap`` preconditions the sampler; it and ``others`` (the Laplace fits of the other presence
    component and of the MAP's other local optima) are the mode-jumping proposal of the first run.
    When the diagnostics fail, the escalation runs ``ESCALATION_STAGES`` more times (and more, up to
    ``ESCALATION_MAX_STAGES``, while the last run's diagnostics still fail), each from the
    previous run's last draws, preconditioned by the moments of its draws (:func:`_draws_gaussian`:
    a posterior with a no-source plateau and narrow source modes is far wider than the Laplace fit
    at the MAP), with a proposal that adds a Gaussian for every mode the previous run's chains
    visited (:func:`_escalation_proposal`) and whose weights are adapted to the posterior mass of
    each (:func:`_adapted_weights`), and ``escalation_jump_tries`` jump tries after every NUTS
    transition, so that every chain moves into and out of a mode only one chain found many times.
    The warm-up iterations are shared between the stages; the last stage's draws are the posterior.
    The escalation evaluates every observation: its chains reach modes far from the Laplace fit
    that the screening was built on (on the sample null scene, draws whose plume reached excluded
    observations at 40 sigma).

    NUTS evaluates the plume only for the observations the Laplace screening keeps
    (:func:`_screen`); the others enter the likelihood through their sufficient statistics. The
    largest plume contribution of an excluded observation under 32 posterior draws is reported in
    the diagnostics (``max_excluded_plume_sigma``) so the approximation is checked on every event.
    """
    init_rng = np.random.default_rng([settings.seed, 3])
    init = 0.5 * init_rng.standard_normal((settings.num_chains, lap.mean.size))
    init[0] = 0.0
    key = jax.random.PRNGKey(settings.seed)
    if sum(b.size * b.weights.shape[1] for b in blocks) > SCREENING_MIN_POINTS:
        active = _screen(data, config, lap, settings, blocks)
        sampled = _with_observations(data, blocks, active)
    else:  # small problem: every observation, and one compiled sampler for all events of this size
        active = [np.ones(b.size, bool) for b in blocks]
        sampled = data
    components = [(np.zeros(config.dim), np.eye(config.dim))] + [_in_coordinates(lap, o) for o in others]
    chains = _run_nuts(
        sampled,
        config,
        lap,
        init,
        _proposal(components),
        settings.num_warmup,
        settings.target_accept,
        settings,
        key,
    )
    diag = convergence_diagnostics({"z": chains.z}, chains.diverging)
    escalated, escalation_stages = False, 0
    ess_target = _ess_target(settings)
    if settings.escalate and not is_converged(diag, ess_threshold=ess_target):
        escalated = True
        # the escalation explores beyond the Laplace fit the screening was built on: every observation
        active, sampled = [np.ones(b.size, bool) for b in blocks], data
        fits, frame = components, lap
        for stage in range(ESCALATION_MAX_STAGES):
            if stage >= ESCALATION_STAGES:
                diag = convergence_diagnostics({"z": chains.z}, chains.diverging)
                if is_converged(diag, ess_threshold=ess_target):
                    break
            drawn, weights = _escalation_proposal(fits, chains, config)
            pre = _draws_gaussian(chains.z)
            fits = _reexpressed(fits, frame, pre)
            jump = _adapt(_proposal(_reexpressed(drawn, frame, pre), weights), pre, sampled, config, settings)
            chains = _run_nuts(
                sampled,
                config,
                pre,
                (chains.z[:, -1] - pre.mean) @ np.linalg.inv(_cholesky(pre.cov)).T,
                jump,
                max(settings.escalation_warmup, settings.num_warmup) // ESCALATION_STAGES,
                settings.escalation_target_accept,
                settings,
                jax.random.fold_in(key, 1 + stage),
                settings.escalation_jump_tries,
            )
            frame = pre
            escalation_stages = stage + 1
        diag = convergence_diagnostics({"z": chains.z}, chains.diverging)
    z = chains.z
    flat = z.reshape(-1, z.shape[-1])
    check = flat[np.linspace(0, flat.shape[0] - 1, 32).astype(int)]
    worst = _max_plume_sigma(check, data, config, blocks)
    excluded = np.concatenate([w[~a] for w, a in zip(worst, active, strict=True)])
    n_active = sum(int(a.sum()) for a in active)
    diag = {
        **diag,
        "converged": is_converged(diag, ess_threshold=ess_target),
        "escalated": escalated,
        "escalation_stages": escalation_stages,
        "ess_target": ess_target,
        "observations_evaluated": n_active / sum(b.size for b in blocks),
        "mean_leapfrog_steps": float(chains.steps.mean()),
        "mode_jump_rate": float(chains.jumped.mean()),
        "max_excluded_plume_sigma": float(excluded.max()) if excluded.size else 0.0,
    }
    phys = _physical_draws(z, data, config)
    p_source = _presence_draws(phys, chains.log_bf, config, float(data.log_prior_odds), rng)
    phys["log_bayes_factor"] = chains.log_bf
    phys["diverging"] = chains.diverging
    return z, phys, p_source, diag


def settings_dict(settings: InversionSettings) -> dict[str, Any]:
    """The settings as a plain dict (for provenance)."""
    return asdict(settings)
