"""The joint model: latent unpacking, likelihood, potential energy and the NumPyro model.

Forward model (one shape for every instrument, see :mod:`attribution_assets.science.forward.operators`):
observation ``i`` of block ``b`` taken at overpass ``o`` is

    y_i ~ Normal(B_b + c * k_i * sum_s w_is * Omega(p_is; x_o, y_o, Q, u_o, v_o, s_o),  lambda_b * sigma_i)

with ``Omega`` the Gaussian-plume column enhancement (kg m-2,
:mod:`attribution_assets.science.forward.plume`), ``B_b`` the block's background (observation
units), ``lambda_b`` a noise inflation and ``c`` the binary "source present" indicator.

Model error of a steady plume (a snapshot of a real plume sees the wind of its last minutes, not the
hourly analysis): the overpass's wind ``(u_o, v_o)`` has the met prior's speed and direction
uncertainty widened in quadrature by gusts (``speed_turbulence_log_sd``, natural-log sd) and meander
(``direction_meander_deg``), and its plume starts at an apparent origin ``(x_o, y_o) = (x0, y0) +
N(0, origin_jitter_m^2 I)`` about the source ``(x0, y0)``: a straight plume fitted to a meandering
one points back to a place beside the source. Seen by a fine imager, its centre line also bends:
``k_o ~ N(0, (plume_turn_deg / L_o)^2)`` rad m-1 (``L_o`` the half-diagonal of the overpass's scene;
:func:`~attribution_assets.science.inversion.problem.bend_sd_per_m`), the plume turning with the
wind during its travel (:mod:`attribution_assets.science.forward.plume`). Every plume of the event
carries ``Q_p = Q * F``, the source rate ``Q`` times a flux factor
``ln F ~ N(0, flux_error_log_sd^2)`` (a snapshot of an unsteady plume holds more or less than the
mean rate's mass). The data see only ``Q_p``, so the latent vector holds ``ln Q_p`` (prior sd
``hypot(q_log_sd, flux_error_log_sd)``) and ``Q`` is drawn afterwards from its exact conditional
(:func:`source_rate_kg_h`): the factor is independent of the data given ``Q_p`` and costs the
samplers nothing. The values and their effect on coverage are in
:class:`~attribution_assets.science.inversion.settings.InversionSettings`. For NUTS, observations
the plume cannot reach under a widened Laplace approximation enter through per-block sufficient
statistics (:class:`~attribution_assets.science.inversion.problem.InversionProblem`).

Source presence. ``c ~ Bernoulli(pi)`` (``pi = 0.5``) is marginalised analytically:
``p(y | theta) = (1 - pi) p(y | theta, c=0) + pi p(y | theta, c=1)`` (a two-component mixture,
evaluated with logsumexp), so NUTS samples a smooth density. Per draw, ``c`` is then drawn from its
exact conditional ``P(c=1 | theta, y) = sigmoid(logit(pi) + log p(y|theta,1) - log p(y|theta,0))``
(:func:`~attribution_assets.science.inversion.result.presence_draws`); emission draws are exactly 0
where ``c = 0``, and ``P(source | y)`` is the Rao-Blackwellised mean of the conditional probabilities
(the standard treatment of discrete latents in NumPyro/Stan, e.g. Stan User's Guide, "Latent
discrete parameters").

Every latent quantity is a whitened standard-normal coordinate ``z`` (non-centred
parameterisation, Papaspiliopoulos, Roberts & Skold 2007, Stat. Sci. 22, 59): ``z`` is the single
NumPyro site and the physical values are deterministic transforms of it (:func:`unpack_latent`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from attribution_assets.science.forward.operators import predict_block
from attribution_assets.science.inversion.groups import ObservationGroup, coupled_form
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig
from attribution_assets.science.inversion.settings import PotentialKind
from attribution_assets.science.units import kg_h_to_kg_s


def unpack_latent(z: jax.Array, data: InversionProblem, config: ModelConfig) -> dict[str, jax.Array]:
    """Physical parameters (JAX arrays) from the whitened latent vector ``z`` (P,): the rate the
    plumes carry if a source is present (kg h-1), source position (m), per overpass the apparent plume
    origin (m), centre-line bend (rad m-1), wind speed (m s-1), direction (rad, towards), components
    (m s-1) and stability index, per block background (block units) and noise inflation."""
    lay = config.layout()
    zq = z[lay["q"]][0]
    q = jnp.exp(data.q_loc + data.q_scale * zq) if config.q_lognormal else data.q_loc + data.q_scale * zq
    pos = data.pos_center if config.fix_position else data.pos_center + data.pos_sd * z[lay["position"]]
    origin = jnp.broadcast_to(pos, (config.n_overpasses, 2))
    if config.origin_jitter:
        origin = origin + data.origin_sd * z[lay["origin"]].reshape(config.n_overpasses, 2)
    bend = data.bend_sd * z[lay["bend"]] if config.plume_bend else jnp.zeros(config.n_overpasses)
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
        "plume_rate_kg_h": q,
        "source_x_m": pos[0],
        "source_y_m": pos[1],
        "plume_origin_x_m": origin[:, 0],
        "plume_origin_y_m": origin[:, 1],
        "plume_bend_per_m": bend,
        "wind_speed_m_s": speed,
        "wind_to_direction_rad": direction,
        "wind_u_m_s": speed * jnp.cos(direction),
        "wind_v_m_s": speed * jnp.sin(direction),
        "stability_index": stab,
        "background": background,
        "noise_inflation": inflation,
    }


def rate_coordinate(rate_kg_h: np.ndarray | float, data: InversionProblem, config: ModelConfig) -> np.ndarray:
    """The whitened rate coordinate of ``z`` whose plumes carry ``rate_kg_h`` (the inverse of
    :func:`unpack_latent`'s rate; NaN or -inf for rates a log-normal prior cannot hold)."""
    loc, scale = float(data.q_loc), float(data.q_scale)
    value = np.log(rate_kg_h) if config.q_lognormal else np.asarray(rate_kg_h, dtype=float)
    return (value - loc) / scale


def group_predict(phys: dict[str, jax.Array], group: ObservationGroup, config: ModelConfig) -> jax.Array:
    """Modelled plume enhancement (n,) of a group's observations in their units, without background."""
    return predict_block(
        group.points,
        group.weights,
        group.k,
        jnp.stack([phys["plume_origin_x_m"][group.overpass], phys["plume_origin_y_m"][group.overpass]]),
        kg_h_to_kg_s(phys["plume_rate_kg_h"]),
        phys["wind_u_m_s"][group.overpass],
        phys["wind_v_m_s"][group.overpass],
        phys["stability_index"][group.overpass],
        urban=config.urban,
        sigma_floor_m=group.sigma_floor_m,
        bend_per_m=phys["plume_bend_per_m"][group.overpass],
    )


def _log_lik_parts(z: jax.Array, data: InversionProblem, config: ModelConfig) -> tuple[jax.Array, jax.Array]:
    """``(log p(y | theta, no source), log p(y | theta, source) - log p(y | theta, no source))``.

    Block ``b``'s errors have the precision ``Q_b / lambda_b^2`` (``Q_b`` its
    :meth:`~attribution_assets.science.forward.operators.ObservationBlock.precision`: ``diag(1 / s^2)``
    for independent errors) and its terms carry its likelihood weight ``data.block_weight`` (structured
    retrieval error, :mod:`~attribution_assets.science.inversion.structured_error`). With residuals
    from the prior background ``r``, background offset ``o`` and plume ``m``,

        log p(y | no source) = -n log lambda - (r - o 1)' Q (r - o 1) / (2 lambda^2)
        log Bayes factor     = (m' Q (r - o 1) - m' Q m / 2) / lambda^2

    the first from the block's sufficient statistics, the second from its groups (``m`` is zero
    outside them). Additive constants (2 pi and ``log det Q``) are dropped; the Bayes factor is
    computed directly, not as a difference of two large sums.
    """
    phys = unpack_latent(z, data, config)
    offset = data.bg_sd * z[config.layout()["background"]]
    infl = phys["noise_inflation"]
    weight = data.block_weight
    ll0 = -jnp.sum(weight * data.block_n * jnp.log(infl)) - 0.5 * jnp.sum(
        weight * (data.block_chi2 + data.block_s0 * (offset - data.block_offset) ** 2) / infl**2
    )
    delta = jnp.zeros(())
    for group in data.groups:
        model = group_predict(phys, group, config)
        rows = jnp.sum(model * (group.qr - offset[group.block] * group.q1 - 0.5 * group.qdiag * model))
        scale = weight[group.block] / infl[group.block] ** 2
        delta = delta + scale * (rows - 0.5 * coupled_form(group, model))
    return ll0, delta


def _mixture(delta: jax.Array, log_prior_odds: jax.Array) -> jax.Array:
    """``log((1 - pi) + pi exp(delta))`` from the prior log-odds ``logit(pi)``."""
    return jnp.logaddexp(0.0, log_prior_odds + delta) - jnp.logaddexp(0.0, log_prior_odds)


def _potential(
    z: jax.Array, data: InversionProblem, config: ModelConfig, kind: PotentialKind = "model"
) -> jax.Array:
    """Negative log posterior density (up to a constant) of ``z``; ``kind`` selects the density
    (:data:`~attribution_assets.science.inversion.settings.PotentialKind`)."""
    ll0, delta = _log_lik_parts(z, data, config)
    if kind == "absent":
        ll = ll0
    elif kind == "present" or not config.presence:
        ll = ll0 + delta
    else:
        ll = ll0 + _mixture(delta, data.log_prior_odds)
    return 0.5 * jnp.sum(z**2) - ll


def preconditioned_model(
    data: InversionProblem, shift: jax.Array, chol: jax.Array, config: ModelConfig
) -> None:
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


potential = jax.jit(_potential, static_argnames=("config", "kind"))
"""``potential(z, data, config, kind="model")``: jitted negative log posterior density of ``z``
(constants dropped)."""
potential_and_gradient = jax.jit(jax.value_and_grad(_potential), static_argnames=("config", "kind"))
"""``potential_and_gradient(z, data, config, kind="model")``: the negative log posterior density of
``z`` and its gradient (what MAP and the Laplace Hessian evaluate; NUTS differentiates the NumPyro model)."""


@partial(jax.jit, static_argnames="config")
def predict_groups(z: jax.Array, data: InversionProblem, config: ModelConfig) -> tuple[jax.Array, ...]:
    """The forward model: modelled plume enhancement of every observation group (rows of
    ``data.groups``, observation units, without background) at the whitened parameters ``z``."""
    phys = unpack_latent(z, data, config)
    return tuple(group_predict(phys, group, config) for group in data.groups)


def source_rate_kg_h(
    plume_rate_kg_h: np.ndarray | float, noise: np.ndarray | float, data: InversionProblem
) -> np.ndarray:
    """The source rate (kg h-1) given the rate its plumes carry, ``plume_rate_kg_h``, and standard
    normal ``noise`` of the same shape (0 gives the conditional median).

    With ``ln Q ~ N(m, s^2)`` and ``ln Q_p = ln Q + ln F``, ``ln F ~ N(0, f^2)``, the conditional is
    ``ln Q | ln Q_p ~ N(m + r (ln Q_p - m), r f^2)`` with ``r = s^2 / (s^2 + f^2)`` (the Gaussian
    conditional; ``s^2 + f^2`` is ``data.q_scale^2``). Without a flux factor (``data.flux_log_sd``
    0, as for a Normal prior) it is ``Q_p`` itself."""
    rate = np.asarray(plume_rate_kg_h, dtype=float)
    flux2 = float(data.flux_log_sd) ** 2
    if flux2 == 0.0:
        return rate
    m, total2 = float(data.q_loc), float(data.q_scale) ** 2
    r = (total2 - flux2) / total2
    return np.exp(m + r * (np.log(rate) - m) + np.sqrt(r * flux2) * np.asarray(noise, dtype=float))


def unpack(z: np.ndarray, data: InversionProblem, config: ModelConfig) -> dict[str, float | np.ndarray]:
    """Physical parameters (floats and numpy arrays, units of :func:`unpack_latent`) of one whitened
    latent vector ``z``, with ``emission_rate_if_present_kg_h`` the conditional median of the source
    rate given the plumes' (:func:`source_rate_kg_h`)."""
    values = unpack_latent(jnp.asarray(z, jnp.float32), data, config)
    out = {k: (float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float)) for k, v in values.items()}
    out["emission_rate_if_present_kg_h"] = float(source_rate_kg_h(out["plume_rate_kg_h"], 0.0, data))
    return out


_unpack_draws = jax.jit(jax.vmap(unpack_latent, in_axes=(0, None, None)), static_argnames=("config",))


def physical_draws(
    z: np.ndarray, data: InversionProblem, config: ModelConfig, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Physical draws (C, D, ...) from whitened draws ``z`` (C, D, P), with each draw's source rate
    ``emission_rate_if_present_kg_h`` drawn from its conditional given the plumes' rate
    (:func:`source_rate_kg_h`, standard normal noise from ``rng``)."""
    chains, draws, dim = z.shape
    flat = _unpack_draws(jnp.asarray(z.reshape(-1, dim), jnp.float32), data, config)
    phys = {k: np.asarray(v).reshape((chains, draws) + np.shape(v)[1:]) for k, v in flat.items()}
    noise = rng.standard_normal((chains, draws))
    phys["emission_rate_if_present_kg_h"] = source_rate_kg_h(phys["plume_rate_kg_h"], noise, data)
    return phys


_BATCH = 256
_batched_parts = jax.jit(jax.vmap(_log_lik_parts, in_axes=(0, None, None)), static_argnames="config")


def log_likelihood_batch(
    z: np.ndarray, data: InversionProblem, config: ModelConfig
) -> tuple[np.ndarray, np.ndarray]:
    """``(log p(y | theta, no source), log Bayes factor of the source)`` (constants dropped) of points
    ``z`` (..., P), each of shape ``z.shape[:-1]``, in fixed-size chunks (one compilation)."""
    flat = z.reshape(-1, z.shape[-1])
    out = np.empty((2, flat.shape[0]))
    for start in range(0, flat.shape[0], _BATCH):
        chunk = flat[start:start + _BATCH]
        padded = np.concatenate([chunk, np.zeros((_BATCH - chunk.shape[0], chunk.shape[1]))])
        parts = _batched_parts(jnp.asarray(padded, jnp.float32), data, config)
        out[:, start:start + chunk.shape[0]] = np.asarray(parts)[:, : chunk.shape[0]]
    return out[0].reshape(z.shape[:-1]), out[1].reshape(z.shape[:-1])


def log_bayes_factors(z: np.ndarray, data: InversionProblem, config: ModelConfig) -> np.ndarray:
    """``log p(y | theta, source) - log p(y | theta, no source)`` of draws ``z`` (..., P)."""
    return log_likelihood_batch(z, data, config)[1]


def mixture_log_likelihood(delta: np.ndarray, data: InversionProblem, config: ModelConfig) -> np.ndarray:
    """The source term of the model's log likelihood from the log Bayes factors ``delta``:
    ``log((1 - pi) + pi exp(delta))`` with the presence mixture, ``delta`` without it."""
    return np.asarray(_mixture(delta, float(data.log_prior_odds)), float) if config.presence else delta
