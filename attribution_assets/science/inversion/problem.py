"""Assembly of one inversion problem: observation groups, prior hyper-parameters, model structure.

Each observation block (one instrument granule, see
:class:`~attribution_assets.science.forward.operators.ObservationBlock`) becomes one group of
arrays (:mod:`~attribution_assets.science.inversion.groups`).

Priors
- ``Q`` (kg h-1): log-normal with a gas-dependent median (CH4 1000 kg h-1, CO2 1e6 kg h-1) and log-sd
  2, or Normal (used for the linear-Gaussian checks).
- source position (m, local frame): Normal around the alert, sd 300 m.
- per overpass, independently: wind speed log-normal with the met prior's speed as its median
  (:func:`_wind_priors`), wind direction Normal around the met direction with the met direction sd,
  stability ``s = 5 sigmoid(eta)`` with ``eta`` Normal so that ``s`` has ~1 class sd around the met
  class.
  Independent per-overpass wind errors are what lets several overpasses tighten ``Q`` and not only
  ``Q/u`` (Varon et al. 2018, AMT 11, 5673: single-image ``Q`` error is dominated by the wind).
- per block (one instrument granule): background Normal around the median of ``y`` with sd
  10 x max(robust spread of ``y``, median ``sigma``); noise inflation ``lambda ~ LogNormal(0, 0.5)``
  (median 1 trusts the reported precision; 95 % range 0.38-2.7 lets the data correct both
  over- and under-stated precisions).
- source presence ``c ~ Bernoulli(pi)``, ``pi = 0.5`` (see :mod:`.model`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion.groups import ObservationGroup, assemble, block_statistics
from attribution_assets.science.inversion.settings import DEFAULT_Q_MEDIAN_KG_H, InversionSettings
from attribution_assets.science.inversion.streams import RandomStream
from attribution_assets.science.inversion.structured_error import block_weights
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import MAD_TO_SD


@dataclass(frozen=True)
class ModelConfig:
    """Static (compile-time) structure of the model: sizes and which parameter groups are free."""

    n_blocks: int
    n_overpasses: int
    q_lognormal: bool
    presence: bool
    fix_wind: bool
    fix_position: bool
    origin_jitter: bool
    plume_bend: bool
    fix_stability: bool
    fix_inflation: bool
    urban: bool

    def layout(self) -> dict[str, slice]:
        """Slices of the whitened latent vector ``z`` for each free parameter group."""
        sizes = [("q", 1)]
        if not self.fix_position:
            sizes.append(("position", 2))
        if self.origin_jitter:
            sizes.append(("origin", 2 * self.n_overpasses))
        if self.plume_bend:
            sizes.append(("bend", self.n_overpasses))
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


class InversionProblem(NamedTuple):
    """The observations and prior hyper-parameters of one event (a JAX pytree; float32).

    ``groups`` hold the observations the plume can reach (all of them for MAP and Laplace; the
    screened subset for NUTS). The no-source likelihood of every block comes from its sufficient
    statistics over all its observations, under its error precision ``Q``
    (``ObservationBlock.precision()``) and with ``r = y - prior background``: ``block_s0 = 1' Q 1``,
    the best offset ``block_offset = 1' Q r / 1' Q 1`` and the chi-square about it
    ``block_chi2 = r' Q r - (1' Q r)^2 / 1' Q 1`` (so that ``(r - o 1)' Q (r - o 1) = block_chi2 +
    block_s0 (o - block_offset)^2`` is exact in float32 where it matters); the plume term needs only
    the groups, exact for a model whose plume is zero outside them.
    """

    groups: tuple[ObservationGroup, ...]
    block_s0: jax.Array  # (B,) block units^-2
    block_offset: jax.Array  # (B,) block units
    block_chi2: jax.Array  # (B,)
    block_n: jax.Array  # (B,) observations per block
    block_weight: jax.Array  # (B,) likelihood weight (1, or 1 / c_b^2 for structured retrieval error)
    q_loc: jax.Array  # log(median kg/h) or mean kg/h
    q_scale: jax.Array  # log-sd or sd kg/h of the plume's rate (the source's widened by the flux factor)
    flux_log_sd: jax.Array  # natural-log sd of the plume's rate about the source's (0: no flux factor)
    pos_center: jax.Array  # (2,) m
    pos_sd: jax.Array  # m
    origin_sd: jax.Array  # m, per axis: a snapshot's apparent plume origin about the source
    bend_sd: jax.Array  # (O,) rad m-1: a snapshot's centre-line bend (0: straight, coarse pixels)
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


def _robust_background(block: ObservationBlock, sd_factor: float) -> tuple[float, float]:
    """Prior mean (median of y) and wide prior sd of a block's background, in block units."""
    y = np.asarray(block.y, dtype=float)
    median = float(np.median(y))
    spread = MAD_TO_SD * float(np.median(np.abs(y - median)))
    scale = max(spread, float(np.median(block.sigma)), 1e-12)
    return median, sd_factor * scale


def _q_prior(gas: str, settings: InversionSettings) -> tuple[bool, float, float, float]:
    """(is_lognormal, loc, scale, flux log-sd) of the prior of the rate the plume carries, in kg h-1
    (log space for lognormal). With a log-normal prior it is the source's prior widened in quadrature
    by the flux factor (``settings.flux_error_log_sd``); a Normal prior has no flux factor."""
    median = settings.q_median_kg_h or DEFAULT_Q_MEDIAN_KG_H[gas.upper()]
    if settings.q_prior == "lognormal":
        flux = settings.flux_error_log_sd
        return True, math.log(median), math.hypot(settings.q_log_sd, flux), flux
    mean = median if settings.q_mean_kg_h is None else settings.q_mean_kg_h
    sd = median if settings.q_sd_kg_h is None else settings.q_sd_kg_h
    return False, mean, sd, 0.0


def _wind_priors(winds: Sequence[OverpassWind], settings: InversionSettings) -> dict[str, np.ndarray]:
    """Per-overpass wind/stability prior parameters (log-normal speed, logit stability).

    The speed is log-normal with the met analysis's speed as its median and the log-variance
    ``ln(1 + (sd / speed)^2)`` of the analysis's uncertainty: a reanalysis reports its best estimate
    with an error about as often above as below it, and the rate the data support is proportional
    to the speed (``Q = U_eff IME / L``, Varon et al. 2018, AMT 11, 5673), so the rate's posterior
    median follows the speed prior's median. A moment-matched log-normal (mean at the analysed
    speed) has its median ``1 / sqrt(1 + (sd / speed)^2)`` times it (with a 1 m s-1 error 5 % low at
    3 m s-1, 29 % at 1 m s-1 and 55 % at 0.5 m s-1) and so pulls every rate down by as much. The
    turbulence a plume snapshot sees and an hourly analysis does not widens it in quadrature with
    its mean kept (``speed_turbulence_log_sd``: the gusts average to the analysed wind);
    ``direction_meander_deg`` widens the direction."""
    speed = np.array([max(w.speed_m_s, 0.1) for w in winds])
    speed_sd = np.array([max(w.speed_sd_m_s, 1e-3) for w in winds])
    turbulence_var = settings.speed_turbulence_log_sd**2
    log_var = np.log1p((speed_sd / speed) ** 2) + turbulence_var
    meander_rad = math.radians(settings.direction_meander_deg)
    stab0 = np.array([w.stability_index for w in winds], dtype=float)
    p0 = np.clip(stab0, 0.25, 4.75) / 5.0
    return {
        "speed0": speed,
        "speed_logmu": np.log(speed) - 0.5 * turbulence_var,
        "speed_logsd": np.sqrt(log_var),
        "dir0": np.array([w.direction_to_rad for w in winds]),
        "dir_sd": np.array([max(math.hypot(w.direction_sd_rad, meander_rad), 1e-3) for w in winds]),
        "stab0": stab0,
        "stab_eta_mu": np.log(p0 / (1.0 - p0)),
        "stab_eta_sd": settings.stability_sd / (5.0 * p0 * (1.0 - p0)),
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


def with_observations(
    data: InversionProblem, blocks: Sequence[ObservationBlock], keep: Sequence[np.ndarray] | None
) -> InversionProblem:
    """``data`` with its observation groups rebuilt from the ``keep`` masks (per block; None: all);
    the observations left out enter through their blocks' sufficient statistics."""
    return data._replace(groups=assemble(blocks, np.asarray(data.bg_mu, float), keep))


FINE_PIXEL_M = 250.0
"""Largest pixel spacing (m) of a block whose overpass gets a plume bend: a plume's bend over a scene
is tens of metres, visible to 25-60 m imagers and inside one 1-7 km TROPOMI or OCO-2 footprint."""


def bend_sd_per_m(blocks: Sequence[ObservationBlock], n_overpasses: int, turn_deg: float) -> np.ndarray:
    """Prior sd (rad m-1) of each overpass's centre-line bend: ``turn_deg`` over ``L = s sqrt(n / 2)``,
    the half-diagonal (m) of a square scene of the overpass's ``n`` fine-imager observations spaced
    ``s`` apart (the median distance between neighbours, below :data:`FINE_PIXEL_M`; whatever the
    grid's rotation), so that the plume's direction turns by ``N(0, turn_deg^2)`` across half a
    scene; 0 for an overpass with no such block (no bend)."""
    sd = np.zeros(n_overpasses)
    if turn_deg <= 0.0:
        return sd
    for block in blocks:
        if block.size < 2:
            continue
        centres = np.asarray(block.points_xy_m, float).mean(axis=1)
        spacing = float(np.median(cKDTree(centres).query(centres, k=2)[0][:, 1]))
        if 0.0 < spacing < FINE_PIXEL_M:
            half_diagonal = spacing * math.sqrt(block.size / 2.0)
            sd[block.overpass] = max(sd[block.overpass], math.radians(turn_deg) / half_diagonal)
    return sd


def _block_weights(
    blocks: Sequence[ObservationBlock], winds: Sequence[OverpassWind], settings: InversionSettings
) -> np.ndarray:
    """The blocks' likelihood weights for structured retrieval error (1 when it is off; see
    :mod:`~attribution_assets.science.inversion.structured_error`)."""
    if not settings.structured_error:
        return np.ones(len(blocks))
    rng = RandomStream.STRUCTURED_ERROR.generator(settings.seed)
    centre = np.asarray(settings.position_prior_xy_m, float)
    return block_weights(blocks, winds, centre, settings.position_sd_m, rng)


def prepare(
    blocks: Sequence[ObservationBlock], winds: Sequence[OverpassWind], gas: str, settings: InversionSettings
) -> tuple[InversionProblem, ModelConfig]:
    """The observation groups of every observation, the prior hyper-parameters and the static
    structure of the problem (for :func:`~attribution_assets.science.inversion.invert`,
    :func:`~attribution_assets.science.inversion.find_map`,
    :func:`~attribution_assets.science.inversion.predict_groups` and tests).

    ``blocks``: observation blocks (any instruments, native resolution); ``winds``: one met prior per
    overpass (``block.overpass`` indexes it); ``gas``: "CH4" or "CO2". Raises ``ValueError`` for
    inconsistent inputs.
    """
    _validate(blocks, winds, gas)
    q_lognormal, q_loc, q_scale, flux_log_sd = _q_prior(gas, settings)
    bg = np.array([_robust_background(block, settings.background_sd_factor) for block in blocks])
    groups = assemble(blocks, bg[:, 0])
    stats = block_statistics(blocks, bg[:, 0])
    wind = _wind_priors(winds, settings)
    bend_sd = bend_sd_per_m(blocks, len(winds), settings.plume_turn_deg)
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    p = settings.prior_p_source
    data = InversionProblem(
        groups=groups,
        block_s0=f32(stats[0]),
        block_offset=f32(stats[1] / stats[0]),
        block_chi2=f32(stats[2] - stats[1] ** 2 / stats[0]),
        block_n=f32([blk.size for blk in blocks]),
        block_weight=f32(_block_weights(blocks, winds, settings)),
        q_loc=f32(q_loc),
        q_scale=f32(q_scale),
        flux_log_sd=f32(flux_log_sd),
        pos_center=f32(settings.position_prior_xy_m),
        pos_sd=f32(settings.position_sd_m),
        origin_sd=f32(settings.origin_jitter_m),
        bend_sd=f32(bend_sd),
        **{k: f32(v) for k, v in wind.items()},
        bg_mu=f32(bg[:, 0]),
        bg_sd=f32(bg[:, 1]),
        infl_log_sd=f32(settings.noise_inflation_log_sd),
        log_prior_odds=f32(math.log(p / (1.0 - p)) if 0 < p < 1 else 0.0),
    )
    config = ModelConfig(
        n_blocks=len(blocks),
        n_overpasses=len(winds),
        q_lognormal=q_lognormal,
        presence=settings.presence and 0 < p < 1,
        fix_wind=settings.fix_wind,
        fix_position=settings.fix_position,
        origin_jitter=not settings.fix_position and settings.origin_jitter_m > 0,
        plume_bend=not settings.fix_wind and bool(np.any(bend_sd > 0)),
        fix_stability=settings.fix_stability,
        fix_inflation=settings.fix_noise_inflation,
        urban=settings.urban,
    )
    return data, config
