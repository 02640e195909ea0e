"""The inversion of one event: multi-start MAP, Laplace fits, then NUTS or Laplace draws."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion.diagnostics import SamplerDiagnostics, ess_target
from attribution_assets.science.inversion.laplace import LaplaceFit, absent_laplace_fit, laplace_fit
from attribution_assets.science.inversion.model import unpack
from attribution_assets.science.inversion.nuts import PosteriorDraws, sample_posterior
from attribution_assets.science.inversion.optimise import find_modes
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig, prepare
from attribution_assets.science.inversion.result import InversionResult, laplace_draws
from attribution_assets.science.inversion.settings import InversionSettings
from attribution_assets.science.met.wind import OverpassWind

_DEFAULT_SETTINGS = InversionSettings()


def _presence_fits(
    fit: LaplaceFit, blocks: Sequence[ObservationBlock], data: InversionProblem, config: ModelConfig
) -> tuple[list[LaplaceFit], float]:
    """The Laplace fits of both presence components, the dominant one first, and ``P(source | y)``
    from their Laplace evidences (only ``fit`` and 1 when the source is always present)."""
    if not config.presence:
        return [fit], 1.0
    absent = absent_laplace_fit(blocks, data, config)
    log_odds = float(data.log_prior_odds) + fit.log_evidence - absent.log_evidence
    p_source = float(1.0 / (1.0 + math.exp(-min(max(log_odds, -700.0), 700.0))))
    # the dominant component's Laplace fit preconditions NUTS; both propose mode jumps
    return ([fit, absent] if p_source >= 0.5 else [absent, fit]), p_source


def invert(
    blocks: Sequence[ObservationBlock],
    winds: Sequence[OverpassWind],
    gas: str,
    settings: InversionSettings = _DEFAULT_SETTINGS,
) -> InversionResult:
    """Posterior of (emission rate, source position, per-overpass wind, backgrounds) for one event.

    ``blocks``: observation blocks (any instruments, native resolution); ``winds``: one met prior per
    overpass (``block.overpass`` indexes it); ``gas``: "CH4" or "CO2". Deterministic for a given
    ``settings.seed``.
    """
    t_start = time.perf_counter()
    data, config = prepare(blocks, winds, gas, settings)
    modes, _ = find_modes(data, config, settings)
    z_map, u_map = modes[0]
    fit = laplace_fit(z_map, u_map, data, config, "present")
    fits, p_laplace = _presence_fits(fit, blocks, data, config)
    laplace_summary, z_laplace, phys_laplace = laplace_draws(fit, p_laplace, data, config, settings)
    map_values = unpack(z_map, data, config)
    t_map = time.perf_counter()
    if settings.sampler == "laplace":
        target = ess_target(settings.num_chains, settings.num_samples)
        posterior = PosteriorDraws(z_laplace, phys_laplace, p_laplace, SamplerDiagnostics.not_sampled(target))
        method = "gaussian-plume multi-start MAP + Laplace"
    else:
        fits += [laplace_fit(z, u, data, config, "present") for z, u in modes[1:]]
        posterior = sample_posterior(data, config, fits[0], fits[1:], settings, blocks)
        method = (
            f"gaussian-plume NUTS ({settings.num_chains} chains x {settings.num_samples}, "
            f"MAP/Laplace init{', presence marginalised' if config.presence else ''})"
        )
    diagnostics = replace(
        posterior.diagnostics, map_laplace_s=t_map - t_start, sampling_s=time.perf_counter() - t_map
    )
    return InversionResult(
        gas=gas.upper(),
        draws=posterior.draws,
        p_source=posterior.p_source,
        map_values=map_values,
        map_log_density=-u_map,
        laplace=laplace_summary,
        diagnostics=diagnostics,
        method=method,
        instruments=tuple(b.instrument for b in blocks),
        block_units=tuple(b.units for b in blocks),
        observed=tuple(np.asarray(b.y) for b in blocks),
        settings=settings,
        latent=posterior.latent,
    )
