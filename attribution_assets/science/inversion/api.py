"""The inversion of one event: multi-start MAP, Laplace fits, then NUTS, SMC or Laplace draws."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion.albedo import AlbedoFit, remove_albedo_artefacts
from attribution_assets.science.inversion.confidence import rate_measurements
from attribution_assets.science.inversion.correlated_error import CorrelatedErrorFit, model_correlated_errors
from attribution_assets.science.inversion.diagnostics import SamplerDiagnostics, ess_target
from attribution_assets.science.inversion.laplace import LaplaceFit, absent_laplace_fit, laplace_fit
from attribution_assets.science.inversion.model import unpack
from attribution_assets.science.inversion.nuts import nuts_posterior
from attribution_assets.science.inversion.optimise import find_modes
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig, prepare
from attribution_assets.science.inversion.result import (
    InversionResult,
    PosteriorDraws,
    is_detected,
    laplace_draws,
    quantiles,
)
from attribution_assets.science.inversion.sampler import SaturatedWarmup
from attribution_assets.science.inversion.settings import InversionSettings
from attribution_assets.science.inversion.smc import reference, smc_posterior
from attribution_assets.science.met.wind import OverpassWind

_DEFAULT_SETTINGS = InversionSettings()
LOG = logging.getLogger(__name__)
MODE_SEPARATION_SD = 3.0
"""Mahalanobis distance (under the best fit's Laplace covariance) beyond which another optimum is a
separate mode; closer ones are the same mode reached twice (polished optima can stop apart along a
direction the posterior barely constrains, such as a plume origin against the source)."""


def separate_modes(best: LaplaceFit, other: LaplaceFit) -> bool:
    """Whether ``other``'s optimum lies more than ``MODE_SEPARATION_SD`` from ``best``'s (Mahalanobis
    distance under ``best``'s Laplace covariance)."""
    delta = other.mean - best.mean
    d2 = float(delta @ np.linalg.solve(best.cov + 1e-12 * np.eye(delta.size), delta))
    return d2 > MODE_SEPARATION_SD**2


def _absent_fit(
    fit: LaplaceFit, data: InversionProblem, config: ModelConfig
) -> tuple[LaplaceFit | None, float]:
    """The closed-form no-source fit and the Laplace log-odds of a source (None and +inf when the
    source is always present)."""
    if not config.presence:
        return None, math.inf
    absent = absent_laplace_fit(data, config)
    return absent, float(data.log_prior_odds) + fit.log_evidence - absent.log_evidence


def choose_sampler(settings: InversionSettings, log_odds: float, fits: Sequence[LaplaceFit]) -> str:
    """The sampler of an event: ``settings.sampler``, or for "auto" NUTS when the Laplace log-odds
    of a source exceed ``settings.nuts_log_odds`` and no other optimum's Laplace evidence is within
    ``settings.nuts_mode_gap`` of the best (one mode of a present source: what NUTS preconditioned by
    the Laplace fit samples well), SMC otherwise (no source or a weak one: a no-plume plateau beside
    narrow plume modes; several modes). Optima that are not :func:`separate_modes` from the best
    count as the best mode."""
    if settings.sampler != "auto":
        return settings.sampler
    best = fits[0].log_evidence
    separated = all(best - f.log_evidence > settings.nuts_mode_gap or not separate_modes(fits[0], f)
                    for f in fits[1:])
    return "nuts" if log_odds > settings.nuts_log_odds and separated else "smc"


def describe_method(sampler: str, settings: InversionSettings, presence: bool, fit: LaplaceFit) -> str:
    """The method's description for the result (``presence``: whether the model marginalises a
    presence indicator); for Laplace draws, the Hessian directions ``fit`` left unresolved
    (:func:`~attribution_assets.science.inversion.laplace.gaussian_at`)."""
    marginalised = ", presence marginalised" if presence else ""
    if sampler == "nuts":
        return (f"gaussian-plume NUTS ({settings.num_chains} chains x {settings.num_samples}, "
                f"MAP/Laplace init{marginalised})")
    if sampler == "smc":
        return (f"gaussian-plume adaptive tempered SMC ({settings.smc_particles} particles in "
                f"{settings.num_chains} populations, Laplace reference{marginalised})")
    if fit.unresolved_directions:
        return (f"gaussian-plume multi-start MAP + Laplace (not at a resolved minimum: "
                f"{fit.unresolved_directions} Hessian direction(s) unresolved; interval unreliable)")
    return "gaussian-plume multi-start MAP + Laplace"


def invert(
    blocks: Sequence[ObservationBlock],
    winds: Sequence[OverpassWind],
    gas: str,
    settings: InversionSettings = _DEFAULT_SETTINGS,
    log: logging.Logger = LOG,
) -> InversionResult:
    """Posterior of (emission rate, source position, per-overpass wind, backgrounds) for one event.

    ``blocks``: observation blocks (any instruments, native resolution); ``winds``: one met prior per
    overpass (``block.overpass`` indexes it); ``gas``: "CH4" or "CO2". Deterministic for a given
    ``settings.seed``. The sampler is chosen by :func:`choose_sampler`; when NUTS fails its
    convergence diagnostics and ``settings.escalate`` is on, SMC samples the posterior instead, and
    without waiting for NUTS's draws when its warm-up saturates the trees
    (:class:`~attribution_assets.science.inversion.sampler.SaturatedWarmup`). Where the Laplace fit
    left Hessian directions unresolved, SMC moves its particles at the posterior for its whole
    budget before it checks that the populations agree
    (:func:`~attribution_assets.science.inversion.smc.smc_posterior`'s ``untrusted_reference``).
    With ``settings.albedo_regression``, blocks that report a surface albedo first lose their linear
    albedo artefact (:mod:`~attribution_assets.science.inversion.albedo`; one log line per block) and
    the result's ``observed`` holds the corrected values (:meth:`InversionResult.as_inverted`) and
    its ``albedo_fits`` the fits. With ``settings.correlated_error``, imager blocks with pixel grid
    positions get the error field fitted to them where it is significant
    (:mod:`~attribution_assets.science.inversion.correlated_error`; one log line per fit, the fits in
    the result's ``correlated_error_fits``). ``log`` gets one progress line when the MAP and Laplace fits are
    done and sampling starts.
    """
    t_start = time.perf_counter()
    albedo_fits: list[AlbedoFit | None] = [None] * len(blocks)
    if settings.albedo_regression:
        blocks, albedo_fits = remove_albedo_artefacts(blocks)
        for albedo_fit in filter(None, albedo_fits):
            log.info(albedo_fit.describe())
    error_fits: list[CorrelatedErrorFit | None] = [None] * len(blocks)
    if settings.correlated_error:
        blocks, error_fits = model_correlated_errors(blocks)
        for error_fit in filter(None, error_fits):
            log.info(error_fit.describe())
    data, config = prepare(blocks, winds, gas, settings)
    modes, _ = find_modes(data, config, settings)
    fit = laplace_fit(*modes[0], data, config, "present")
    absent, log_odds = _absent_fit(fit, data, config)
    p_laplace = float(1.0 / (1.0 + math.exp(-min(max(log_odds, -700.0), 700.0))))
    laplace_summary, z_laplace, phys_laplace = laplace_draws(fit, p_laplace, data, config, settings)
    map_values = unpack(fit.mean, data, config)
    sampler = settings.sampler
    if sampler != "laplace":
        fits = [fit] + [laplace_fit(z, u, data, config, "present") for z, u in modes[1:]]
        sampler = choose_sampler(settings, log_odds, fits)
    t_map = time.perf_counter()
    method = describe_method(sampler, settings, config.presence, fit)
    log.info(f"MAP + Laplace in {t_map - t_start:.1f} s, log-odds of a source {log_odds:.1f}; "
             f"{'sampling with ' if sampler != 'laplace' else ''}{method}")
    escalated = False
    if sampler == "laplace":
        target = ess_target(settings.num_chains, settings.num_samples)
        posterior = PosteriorDraws(z_laplace, phys_laplace, p_laplace, SamplerDiagnostics.not_sampled(target))
    elif sampler == "nuts":
        posterior = nuts_posterior(data, config, fit, settings, blocks, stop_if_saturated=settings.escalate)
        saturated = isinstance(posterior, SaturatedWarmup)
        if saturated:
            log.info(f"NUTS warm-up saturated its trees ({posterior.mean_steps:.0f} leapfrog steps per "
                     f"draw, limit {posterior.limit:.1f}); sampling with SMC instead")
        escalated = saturated or (settings.escalate and not posterior.diagnostics.converged)
        sampler = "smc" if escalated else sampler
    if sampler == "smc":
        posterior = smc_posterior(data, config, reference(fits, absent, p_laplace), settings, escalated,
                                  untrusted_reference=fit.unresolved_directions > 0)
    measurements = ()
    if not is_detected(posterior.p_source, quantiles(posterior.draws["emission_rate_kg_h"]).p05):
        weights = posterior.draws["p_source_conditional"]
        measurements = rate_measurements(posterior.latent, weights, data, config)
    diagnostics = replace(
        posterior.diagnostics, map_laplace_s=t_map - t_start, sampling_s=time.perf_counter() - t_map
    )
    return InversionResult(
        gas=gas.upper(),
        draws=posterior.draws,
        p_source=posterior.p_source,
        map_values=map_values,
        map_log_density=-fit.potential,
        laplace=laplace_summary,
        diagnostics=diagnostics,
        method=describe_method(sampler, settings, config.presence, fit),
        instruments=tuple(b.instrument for b in blocks),
        block_units=tuple(b.units for b in blocks),
        observed=tuple(np.asarray(b.y) for b in blocks),
        settings=settings,
        latent=posterior.latent,
        albedo_fits=tuple(albedo_fits),
        correlated_error_fits=tuple(error_fits),
        rate_measurements=measurements,
    )
