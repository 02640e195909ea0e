"""Joint Bayesian inversion of every instrument that saw the event (NumPyro: MAP + Laplace, NUTS;
:func:`attribution_assets.pipeline.inversion.invert_event`)."""

import xarray as xr
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from attribution_assets.assets.common import event_of, figure_metadata
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.figures import posterior_figure, predictive_figure
from attribution_assets.pipeline.forward import ForwardModel
from attribution_assets.pipeline.inversion import NoObservationsError, invert_event
from attribution_assets.pipeline.met import winds_from_dataset
from attribution_assets.resources import AnalysisSettings, OutputStore
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.inversion import SamplerDiagnostics


def convergence_check(diagnostics: SamplerDiagnostics) -> AssetCheckResult:
    """R-hat < 1.01, bulk and tail ESS >= the target (400, fewer for short runs), no divergences."""
    return AssetCheckResult(
        check_name="sampler_converged",
        passed=bool(diagnostics.converged),
        severity=AssetCheckSeverity.WARN,
        metadata={
            "r_hat_max": float(diagnostics.r_hat_max),
            "ess_bulk_min": float(diagnostics.ess_bulk_min),
            "ess_tail_min": float(diagnostics.ess_tail_min),
            "ess_target": float(diagnostics.ess_target),
            "divergences": int(diagnostics.divergences),
            "escalated": bool(diagnostics.escalated),
            "escalation_stages": int(diagnostics.escalation_stages),
        },
    )


@asset(
    partitions_def=detection_events,
    group_name="inversion",
    check_specs=[
        AssetCheckSpec(
            "sampler_converged",
            asset="source_posterior",
            description="NUTS diagnostics: rank-normalised R-hat <= 1.01, bulk and tail "
            "ESS >= 400 (a quarter of the draws for short runs), no divergences.",
        )
    ],
    description="Joint posterior of emission rate, source position, per-overpass wind and stability, "
    "per-instrument background and noise: multi-start MAP + Laplace, then NUTS with ArviZ diagnostics.",
)
def source_posterior(
    context: AssetExecutionContext,
    plume_forward: dict[str, xr.Dataset],
    met_conditions: xr.Dataset,
    settings: AnalysisSettings,
    store: OutputStore,
):
    event = event_of(context)
    forward = ForwardModel.from_datasets(plume_forward, met_conditions)
    try:
        inversion = invert_event(
            event, forward, met_conditions, settings.event_settings().inversion, context.log
        )
    except NoObservationsError as error:
        raise Failure(description=str(error), allow_retries=False) from error
    result, summary, diagnostics = inversion.result, inversion.summary, inversion.result.diagnostics
    if not diagnostics.converged:
        context.log.warning(
            f"{event.key}: sampler diagnostics failed after escalation "
            f"(r_hat_max={diagnostics.r_hat_max:.3f}, ess_bulk_min={diagnostics.ess_bulk_min:.0f}, "
            f"ess_tail_min={diagnostics.ess_tail_min:.0f}, divergences={diagnostics.divergences})"
        )
    frame = LocalFrame(event.longitude, event.latitude)
    figure = posterior_figure(result, forward.blocks, frame, event.key)
    predictive = predictive_figure(
        result, forward.blocks, winds_from_dataset(met_conditions),
        f"{event.key}: observed vs posterior predictive",
    )
    predictive_meta = figure_metadata(predictive, store.figure_path("source_posterior_predictive", event.key))
    metadata = {
        "emission_rate_kg_h": summary.emission_rate_kg_h,
        "interval_90_kg_h": f"{summary.emission_rate_kg_h_p05:,.0f} .. {summary.emission_rate_kg_h_p95:,.0f}",
        "p_source": summary.p_source,
        "detected": summary.detected,
        "r_hat_max": summary.r_hat_max,
        "ess_bulk_min": summary.ess_bulk_min,
        "divergences": summary.divergences,
        "method": summary.method,
        "laplace": MetadataValue.json(result.laplace.as_dict()),
        "observations_evaluated": float(diagnostics.observations_evaluated),
        "max_excluded_plume_sigma": float(diagnostics.max_excluded_plume_sigma),
        **figure_metadata(figure, store.figure_path("source_posterior", event.key)),
        "posterior_predictive": predictive_meta["figure"],
        "posterior_predictive_path": predictive_meta["figure_path"],
    }
    yield Output(inversion.inference_data, metadata=metadata)
    yield convergence_check(diagnostics)
