"""The NUTS posterior of one event: screening, the first run, its diagnostics and the escalation.

Convergence is judged by rank-normalised R-hat, bulk/tail ESS and divergences
(:mod:`attribution_assets.science.inversion.diagnostics`); a failed check triggers one automatic
escalation: two further runs, each continuing where the last ended, with a longer warm-up in all,
``target_accept_prob = 0.9``, preconditioning by the moments of the previous run's draws, a
mode-jumping proposal built from those draws with its weights adapted to the posterior by
importance sampling, and 24 jump tries after every NUTS transition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion.diagnostics import (
    ConvergenceDiagnostics,
    SamplerDiagnostics,
    convergence_diagnostics,
    ess_target,
    is_converged,
)
from attribution_assets.science.inversion.laplace import LaplaceFit, cholesky, gaussian_of_draws
from attribution_assets.science.inversion.model import physical_draws
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig, with_observations
from attribution_assets.science.inversion.proposal import (
    Gaussian,
    adapt,
    build_proposal,
    escalation_proposal,
    in_coordinates,
    reexpressed,
)
from attribution_assets.science.inversion.result import presence_draws
from attribution_assets.science.inversion.sampler import Chains, run_nuts
from attribution_assets.science.inversion.screening import max_plume_sigma, needs_screening, screen
from attribution_assets.science.inversion.settings import InversionSettings
from attribution_assets.science.inversion.streams import RandomStream, nuts_key

ESCALATION_STAGES = 2
"""Runs of the escalation: each starts where the previous one ended, is preconditioned by the
moments of its draws and jumps with a proposal built from them
(:func:`~attribution_assets.science.inversion.proposal.escalation_proposal`); the draws of the last
are the posterior."""
ESCALATION_MAX_STAGES = 3
"""Runs of the escalation at most: after ``ESCALATION_STAGES``, another runs while the diagnostics
of the last still fail (on the sample null scene, whose tail ESS after two runs ranges from below
400 to ~1,000 with floating-point details)."""
EXCLUDED_CHECK_DRAWS = 32
"""Posterior draws under which the plume contribution of the excluded observations is checked."""


class PosteriorDraws(NamedTuple):
    """Draws of one sampled posterior: whitened ``latent`` (C, D, P), physical ``draws`` (C, D, ...),
    ``P(source | y)`` and the sampler's diagnostics."""

    latent: np.ndarray
    draws: dict[str, np.ndarray]
    p_source: float
    diagnostics: SamplerDiagnostics


def _escalate(
    chains: Chains,
    components: list[Gaussian],
    fit: LaplaceFit,
    data: InversionProblem,
    config: ModelConfig,
    settings: InversionSettings,
) -> tuple[Chains, int]:
    """The escalation's runs after the first run's ``chains`` (preconditioned by ``fit``, jumping
    with ``components``): the last run's chains and the number of runs (see :func:`sample_posterior`)."""
    target = ess_target(settings.num_chains, settings.num_samples)
    fits, frame, stages = components, fit, 0
    for stage in range(ESCALATION_MAX_STAGES):
        if stage >= ESCALATION_STAGES and is_converged(
            convergence_diagnostics({"z": chains.z}, chains.diverging), ess_threshold=target
        ):
            break
        drawn, weights = escalation_proposal(fits, chains.w, chains.z, chains.log_bf, config)
        pre = gaussian_of_draws(chains.z)
        fits = reexpressed(fits, frame, pre)
        proposal = build_proposal(reexpressed(drawn, frame, pre), weights)
        jump = adapt(proposal, pre, data, config, settings.seed)
        chains = run_nuts(
            data,
            config,
            pre,
            (chains.z[:, -1] - pre.mean) @ np.linalg.inv(cholesky(pre.cov)).T,
            jump,
            max(settings.escalation_warmup, settings.num_warmup) // ESCALATION_STAGES,
            settings.escalation_target_accept,
            settings,
            nuts_key(settings.seed, stage),
            settings.escalation_jump_tries,
        )
        frame = pre
        stages = stage + 1
    return chains, stages


def _diagnostics(
    chains: Chains,
    convergence: ConvergenceDiagnostics,
    data: InversionProblem,
    config: ModelConfig,
    settings: InversionSettings,
    blocks: Sequence[ObservationBlock],
    active: list[np.ndarray],
    escalation_stages: int | None,
) -> SamplerDiagnostics:
    """Diagnostics of the final ``chains`` (their ``convergence``); ``active``: the observations they
    evaluated, per block; ``escalation_stages``: None when the run did not escalate."""
    target = ess_target(settings.num_chains, settings.num_samples)
    flat = chains.z.reshape(-1, chains.z.shape[-1])
    check = flat[np.linspace(0, flat.shape[0] - 1, EXCLUDED_CHECK_DRAWS).astype(int)]
    worst = max_plume_sigma(check, data, config, blocks)
    excluded = np.concatenate([w[~a] for w, a in zip(worst, active, strict=True)])
    n_active = sum(int(a.sum()) for a in active)
    return SamplerDiagnostics(
        r_hat_max=convergence.r_hat_max,
        ess_bulk_min=convergence.ess_bulk_min,
        ess_tail_min=convergence.ess_tail_min,
        divergences=convergence.divergences,
        converged=is_converged(convergence, ess_threshold=target),
        ess_target=target,
        escalated=escalation_stages is not None,
        escalation_stages=escalation_stages or 0,
        observations_evaluated=n_active / sum(b.size for b in blocks),
        mean_leapfrog_steps=float(chains.steps.mean()),
        mode_jump_rate=float(chains.jumped.mean()),
        max_excluded_plume_sigma=float(excluded.max()) if excluded.size else 0.0,
    )


def sample_posterior(
    data: InversionProblem,
    config: ModelConfig,
    fit: LaplaceFit,
    others: Sequence[LaplaceFit],
    settings: InversionSettings,
    blocks: Sequence[ObservationBlock],
) -> PosteriorDraws:
    """NUTS from Laplace draws around the MAP, diagnostics, and one escalation if needed.

    ``fit`` preconditions the sampler; it and ``others`` (the Laplace fits of the other presence
    component and of the MAP's other local optima) are the mode-jumping proposal of the first run.
    When the diagnostics fail, the escalation runs ``ESCALATION_STAGES`` more times (and more, up to
    ``ESCALATION_MAX_STAGES``, while the last run's diagnostics still fail), each from the
    previous run's last draws, preconditioned by the moments of its draws
    (:func:`~attribution_assets.science.inversion.laplace.gaussian_of_draws`: a posterior with a
    no-source plateau and narrow source modes is far wider than the Laplace fit at the MAP), with a
    proposal that adds a Gaussian for every mode the previous run's chains visited
    (:func:`~attribution_assets.science.inversion.proposal.escalation_proposal`) and whose weights
    are adapted to the posterior mass of each
    (:func:`~attribution_assets.science.inversion.proposal.adapted_weights`), and
    ``escalation_jump_tries`` jump tries after every NUTS transition, so that every chain moves into
    and out of a mode only one chain found many times. The warm-up iterations are shared between the
    stages; the last stage's draws are the posterior. The escalation evaluates every observation:
    its chains reach modes far from the Laplace fit that the screening was built on (on the sample
    null scene, draws whose plume reached excluded observations at 40 sigma).

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
    components = [(np.zeros(config.dim), np.eye(config.dim))] + [in_coordinates(fit, o) for o in others]
    chains = run_nuts(
        sampled,
        config,
        fit,
        init,
        build_proposal(components),
        settings.num_warmup,
        settings.target_accept,
        settings,
        nuts_key(settings.seed),
    )
    stages = None
    convergence = convergence_diagnostics({"z": chains.z}, chains.diverging)
    if settings.escalate and not is_converged(
        convergence, ess_threshold=ess_target(settings.num_chains, settings.num_samples)
    ):
        # the escalation explores beyond the Laplace fit the screening was built on: every observation
        active = [np.ones(b.size, bool) for b in blocks]
        chains, stages = _escalate(chains, components, fit, data, config, settings)
        convergence = convergence_diagnostics({"z": chains.z}, chains.diverging)
    diagnostics = _diagnostics(chains, convergence, data, config, settings, blocks, active, stages)
    phys = physical_draws(chains.z, data, config)
    rng = RandomStream.PRESENCE.generator(settings.seed)
    p_source = presence_draws(phys, chains.log_bf, config, float(data.log_prior_odds), rng)
    phys["log_bayes_factor"] = chains.log_bf
    phys["diverging"] = chains.diverging
    return PosteriorDraws(chains.z, phys, p_source, diagnostics)
