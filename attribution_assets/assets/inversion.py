"""Joint Bayesian inversion of every instrument that saw the event (NumPyro: MAP + Laplace, then NUTS or
tempered SMC; :func:`attribution_assets.pipeline.inversion.invert_event`).

The asset records the sampler diagnostics, the albedo artefacts removed, the correlated-error fields
fitted and the posterior-predictive residuals per block (against the observations the inversion saw)
in its metadata; the ``sampler_converged`` and ``posterior_predictive`` checks
(:mod:`attribution_assets.checks`) judge them.
"""

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from dagster import AssetExecutionContext, Failure, MetadataValue, Output, asset

from attribution_assets.assets.common import (
    CODE_VERSION,
    INFERENCE_DATA,
    InferenceData,
    event_of,
    figure_metadata,
    table_metadata,
)
from attribution_assets.partitions import detection_events
from attribution_assets.resources import AnalysisSettings, OutputStore

if TYPE_CHECKING:
    from attribution_assets.science.forward.operators import ObservationBlock
    from attribution_assets.science.inversion import InversionResult, PosteriorSummary, SamplerDiagnostics


def _finite(value: float, digits: int) -> float | None:
    """``value`` rounded, or None when it is not finite (no chains: NaN R-hat and ESS)."""
    return round(float(value), digits) if math.isfinite(value) else None


def predictive_rms(
    names: Sequence[str], blocks: Sequence["ObservationBlock"], predictive: Sequence[dict[str, np.ndarray]]
) -> dict[str, float]:
    """RMS (1) of ``(observed - posterior predictive mean) / sigma`` of every block, by block name."""
    return {
        name: round(float(np.sqrt(np.mean(((block.y - pred["mean"]) / block.sigma) ** 2))), 3)
        for name, block, pred in zip(names, blocks, predictive, strict=True)
    }


def albedo_table(names: Sequence[str], result: "InversionResult") -> pd.DataFrame:
    """The albedo artefact removed from each block that had one fitted (slope and standard error in
    the block's units per unit albedo)."""
    rows = [{"block": name, "slope_per_unit_albedo": fit.slope, "slope_se": fit.slope_se,
             "units": fit.units, "observations": fit.n}
            for name, fit in zip(names, result.albedo_fits, strict=True) if fit is not None]
    return pd.DataFrame(rows, columns=["block", "slope_per_unit_albedo", "slope_se", "units", "observations"])


def correlated_error_table(names: Sequence[str], result: "InversionResult") -> pd.DataFrame:
    """The error field fitted to each imager block (variances in units of its reported sd squared):
    the variance of its normalised errors, the share left given the neighbours, the F test's
    log10 p-value and whether the likelihood used it."""
    columns = ["block", "normalised_variance", "conditional_variance", "log10_p_value", "pixels", "used"]
    rows = [{"block": name, "normalised_variance": fit.variance, "conditional_variance": fit.tau2,
             "log10_p_value": math.log10(max(fit.p_value, 1e-300)), "pixels": fit.n, "used": fit.used}
            for name, fit in zip(names, result.correlated_error_fits, strict=True) if fit is not None]
    return pd.DataFrame(rows, columns=columns)


def diagnostics_metadata(diagnostics: "SamplerDiagnostics", draws: int) -> dict[str, object]:
    """The sampler diagnostics (R-hat 1, ESS in draws) the ``sampler_converged`` check judges, and the
    sampler's work: NUTS leapfrog steps per draw, SMC tempering steps, random-walk acceptance and move
    pairs at the posterior (0 and None for the sampler not used), and the wall times (s) of MAP +
    Laplace and of the sampling."""
    return {
        "r_hat_max": _finite(diagnostics.r_hat_max, 4),
        "ess_bulk_min": _finite(diagnostics.ess_bulk_min, 0),
        "ess_tail_min": _finite(diagnostics.ess_tail_min, 0),
        "ess_target": float(diagnostics.ess_target),
        "divergences": int(diagnostics.divergences),
        "draws": int(draws),
        "converged": bool(diagnostics.converged),
        "sampler": diagnostics.sampler,
        "escalated": bool(diagnostics.escalated),
        "mean_leapfrog_steps": _finite(diagnostics.mean_leapfrog_steps, 1),
        "smc_temperatures": int(diagnostics.smc_temperatures),
        "smc_acceptance": _finite(diagnostics.smc_acceptance, 3),
        "smc_posterior_moves": int(diagnostics.smc_posterior_moves),
        "map_laplace_s": _finite(diagnostics.map_laplace_s, 2),
        "sampling_s": _finite(diagnostics.sampling_s, 2),
    }


def summary_metadata(summary: "PosteriorSummary") -> dict[str, object]:
    """The emission and source summary, rounded, units in the names."""
    return {
        "emission_rate_kg_h": round(summary.emission_rate_kg_h, 1),
        "emission_rate_kg_h_p50": round(summary.emission_rate_kg_h_p50, 1),
        "interval_90_kg_h": f"{summary.emission_rate_kg_h_p05:,.0f} .. {summary.emission_rate_kg_h_p95:,.0f}",
        "p_source": round(summary.p_source, 3),
        "detected": bool(summary.detected),
        "source_lon_deg": round(summary.source_lon, 5),
        "source_lat_deg": round(summary.source_lat, 5),
        "source_location_sd_m": round(summary.source_location_sd_m, 0),
        "method": summary.method,
    }


@asset(
    partitions_def=detection_events,
    group_name="inversion",
    pool="inversion",  # instance concurrency pool: joint inversions sampling at once (dagster.yaml)
    kinds={"numpyro", "jax", "netcdf"},
    dagster_type=INFERENCE_DATA,
    code_version=CODE_VERSION,
    description="Joint posterior of emission rate, source position, per-overpass wind and stability, "
    "per-instrument background and noise: multi-start MAP + Laplace, then NUTS or tempered SMC (chosen "
    "per event) with ArviZ diagnostics "
    "(judged by the sampler_converged and posterior_predictive checks).",
)
def source_posterior(
    context: AssetExecutionContext,
    plume_forward: dict[str, xr.Dataset],
    met_conditions: xr.Dataset,
    settings: AnalysisSettings,
    store: OutputStore,
) -> Output[InferenceData]:
    # the stages import JAX, NumPyro and ArviZ: here, not when the code location loads
    from attribution_assets.pipeline.figures import posterior_figure, predictive_figure
    from attribution_assets.pipeline.forward import ForwardModel
    from attribution_assets.pipeline.inversion import NoObservationsError, invert_event
    from attribution_assets.pipeline.met import winds_from_dataset
    from attribution_assets.science.geometry import LocalFrame
    from attribution_assets.science.inversion import posterior_predictive

    event = event_of(context)
    forward = ForwardModel.from_datasets(plume_forward, met_conditions)
    try:
        inversion = invert_event(
            event, forward, met_conditions, settings.event_settings().inversion, context.log
        )
    except NoObservationsError as error:
        raise Failure(description=str(error), allow_retries=False) from error
    result, summary = inversion.result, inversion.summary
    winds = winds_from_dataset(met_conditions)
    seen = result.as_inverted(forward.blocks)
    predictive_draws = posterior_predictive(result, seen, winds)
    rms = predictive_rms(forward.block_names, seen, predictive_draws)
    frame = LocalFrame(event.longitude, event.latitude)
    figure = posterior_figure(result, seen, frame, event.key)
    predictive = predictive_figure(
        result, seen, winds, f"{event.key}: observed vs posterior predictive", predictive_draws
    )
    predictive_meta = figure_metadata(predictive, store.figure_path("source_posterior_predictive", event.key))
    posterior = inversion.inference_data.posterior
    metadata = {
        **summary_metadata(summary),
        **diagnostics_metadata(result.diagnostics, posterior.sizes["chain"] * posterior.sizes["draw"]),
        "predictive_rms": MetadataValue.json(rms),
        "predictive_residuals": table_metadata(
            pd.DataFrame({"block": list(rms), "residual_rms_sigma": list(rms.values())}), 2
        ),
        "albedo_artefacts": table_metadata(albedo_table(forward.block_names, result), 2),
        "correlated_errors": table_metadata(correlated_error_table(forward.block_names, result), 2),
        "laplace": MetadataValue.json(result.laplace.as_dict()),
        "observations_evaluated": round(float(result.diagnostics.observations_evaluated), 3),
        "max_excluded_plume_sigma": round(float(result.diagnostics.max_excluded_plume_sigma), 3),
        **figure_metadata(figure, store.figure_path("source_posterior", event.key)),
        "posterior_predictive": predictive_meta["figure"],
        "posterior_predictive_path": predictive_meta["figure_path"],
    }
    return Output(inversion.inference_data, metadata=metadata)
