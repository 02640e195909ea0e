"""The NUTS posterior of one event: screening, the chains and their diagnostics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion.diagnostics import (
    SamplerDiagnostics,
    convergence_diagnostics,
    ess_target,
    is_converged,
)
from attribution_assets.science.inversion.laplace import LaplaceFit
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig, with_observations
from attribution_assets.science.inversion.result import PosteriorDraws, sampled_posterior
from attribution_assets.science.inversion.sampler import Chains, SaturatedWarmup, run_nuts
from attribution_assets.science.inversion.screening import max_plume_sigma, needs_screening, screen
from attribution_assets.science.inversion.settings import InversionSettings
from attribution_assets.science.inversion.streams import RandomStream, nuts_key

EXCLUDED_CHECK_DRAWS = 32
"""Posterior draws under which the plume contribution of the excluded observations is checked."""


def _diagnostics(
    chains: Chains,
    data: InversionProblem,
    config: ModelConfig,
    settings: InversionSettings,
    blocks: Sequence[ObservationBlock],
    active: list[np.ndarray],
) -> SamplerDiagnostics:
    """Diagnostics of ``chains``; ``active``: the observations they evaluated, per block."""
    target = ess_target(settings.num_chains, settings.num_samples)
    convergence = convergence_diagnostics({"z": chains.z}, chains.diverging)
    flat = chains.z.reshape(-1, chains.z.shape[-1])
    check = flat[np.linspace(0, flat.shape[0] - 1, EXCLUDED_CHECK_DRAWS).astype(int)]
    worst = max_plume_sigma(check, data, config, blocks)
    excluded = np.concatenate([w[~a] for w, a in zip(worst, active, strict=True)])
    n_active = sum(int(a.sum()) for a in active)
    return SamplerDiagnostics(
        **vars(convergence),
        converged=is_converged(convergence, ess_threshold=target),
        ess_target=target,
        sampler="nuts",
        escalated=False,
        observations_evaluated=n_active / sum(b.size for b in blocks),
        mean_leapfrog_steps=float(chains.steps.mean()),
        max_excluded_plume_sigma=float(excluded.max()) if excluded.size else 0.0,
    )


def nuts_posterior(
    data: InversionProblem,
    config: ModelConfig,
    fit: LaplaceFit,
    settings: InversionSettings,
    blocks: Sequence[ObservationBlock],
    stop_if_saturated: bool = False,
) -> PosteriorDraws | SaturatedWarmup:
    """NUTS preconditioned by the Laplace fit ``fit`` (chain 0 from its mean, the others from
    offsets of half a Laplace sd, ``CHAIN_INIT`` stream), and its diagnostics; with
    ``stop_if_saturated``, :class:`SaturatedWarmup` instead when a chain's warm-up saturates its
    trees (the caller then samples otherwise, without paying for draws that would fail).

    NUTS evaluates the plume only for the observations the Laplace screening keeps
    (:func:`~attribution_assets.science.inversion.screening.screen`); the others enter the likelihood
    through their sufficient statistics. The largest plume contribution of an excluded observation
    under ``EXCLUDED_CHECK_DRAWS`` posterior draws is reported in the diagnostics
    (``max_excluded_plume_sigma``) so the approximation is checked on every event.
    """
    init = 0.5 * RandomStream.CHAIN_INIT.generator(settings.seed).standard_normal(
        (settings.num_chains, fit.mean.size)
    )
    init[0] = 0.0
    if needs_screening(blocks):
        active = screen(data, config, fit, settings.seed, blocks)
        sampled = with_observations(data, blocks, active)
    else:  # small problem: every observation, and one compiled sampler for all events of this size
        active = [np.ones(b.size, bool) for b in blocks]
        sampled = data
    chains = run_nuts(sampled, config, fit, init, settings, nuts_key(settings.seed), stop_if_saturated)
    if isinstance(chains, SaturatedWarmup):
        return chains
    diagnostics = _diagnostics(chains, data, config, settings, blocks, active)
    return sampled_posterior(
        chains.z, chains.log_bf, chains.diverging, data, config, settings.seed, diagnostics
    )
