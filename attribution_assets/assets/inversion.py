"""Joint Bayesian inversion of every instrument that saw the event (NumPyro: MAP + Laplace, NUTS)."""

from dataclasses import replace

import numpy as np
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

from attribution_assets.assets.common import event_of, figure_metadata, new_figure
from attribution_assets.assets.met import winds_from_dataset
from attribution_assets.partitions import detection_events
from attribution_assets.resources import AnalysisSettings, OutputStore
from attribution_assets.science.forward.blocks import block_from_dataset
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.inversion import (
    InversionResult,
    SamplerDiagnostics,
    invert,
    posterior_predictive,
)


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


def posterior_figure(result: InversionResult, blocks, frame: LocalFrame, title: str):
    """Emission-rate posterior and the posterior of the source position over the finest observations."""
    fig, (ax_q, ax_map) = new_figure(1, 2, figsize=(10, 4))
    q = np.ravel(result.draws["emission_rate_kg_h"])
    present = q[q > 0]
    if present.size:
        ax_q.hist(present, bins=60, color="tab:orange", alpha=0.8)
    ax_q.set_xlabel("emission rate (kg/h), source-present draws")
    ax_q.set_title(
        f"P(source) = {result.p_source:.2f}, {present.size / max(q.size, 1):.0%} of draws > 0", fontsize=9
    )
    finest = min(blocks, key=lambda b: np.median(np.abs(np.diff(b.lon))) if b.size > 1 else np.inf)
    art = ax_map.scatter(finest.lon, finest.lat, c=finest.y - np.median(finest.y), s=6, cmap="RdBu_r")
    fig.colorbar(art, ax=ax_map, label=f"{finest.instrument} ({finest.units})")
    lon, lat = frame.to_lonlat(np.ravel(result.draws["source_x_m"]), np.ravel(result.draws["source_y_m"]))
    ax_map.scatter(lon[::10], lat[::10], s=2, c="k", alpha=0.3, label="posterior source position")
    ax_map.plot(frame.lon0_deg, frame.lat0_deg, "g^", label="alert")
    ax_map.legend(fontsize=7, loc="lower right")
    ax_map.set_title("source position posterior", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def predictive_figure(result: InversionResult, blocks, winds, title: str):
    """Observed vs posterior-predictive mean per instrument block, with the 1:1 line."""
    predictive = posterior_predictive(result, blocks, winds)
    fig, axes = new_figure(1, len(blocks), figsize=(3.6 * len(blocks), 3.4), squeeze=False)
    for ax, block, pred in zip(axes[0], blocks, predictive, strict=True):
        ax.scatter(block.y, pred["mean"], s=3, alpha=0.4, color="tab:blue", rasterized=True)
        lo, hi = np.percentile(np.r_[block.y, pred["mean"]], [0.5, 99.5])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        z = (block.y - pred["mean"]) / block.sigma
        ax.set_title(f"{block.instrument} (overpass {block.overpass})\n"
                     f"RMS of (obs - pred) / sigma = {np.sqrt(np.mean(z**2)):.2f}", fontsize=8)
        ax.set_xlabel(f"observed ({block.units})")
        ax.set_ylabel(f"posterior predictive ({block.units})")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


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
    if not plume_forward:
        raise Failure(
            description=f"{event.key}: no instrument observed the event (outside every footprint "
            "or every granule rejected); nothing to invert",
            allow_retries=False,
        )
    blocks = [block_from_dataset(ds) for ds in plume_forward.values()]
    winds = winds_from_dataset(met_conditions)
    frame = LocalFrame(event.longitude, event.latitude)
    context.log.info(f"inverting {sum(b.size for b in blocks)} observations from {len(blocks)} blocks")
    result = invert(blocks, winds, event.gas, settings.inversion_settings())
    summary = replace(result.summary().located(frame), granules=tuple(plume_forward))
    idata = result.to_inference_data(summary)
    diagnostics = result.diagnostics
    if not diagnostics.converged:
        context.log.warning(
            f"{event.key}: sampler diagnostics failed after escalation "
            f"(r_hat_max={diagnostics.r_hat_max:.3f}, ess_bulk_min={diagnostics.ess_bulk_min:.0f}, "
            f"ess_tail_min={diagnostics.ess_tail_min:.0f}, divergences={diagnostics.divergences})"
        )
    figure = posterior_figure(result, blocks, frame, event.key)
    predictive = predictive_figure(result, blocks, winds, f"{event.key}: observed vs posterior predictive")
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
    yield Output(idata, metadata=metadata)
    yield convergence_check(diagnostics)
