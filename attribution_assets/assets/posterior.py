"""GeoParquet posterior partitions: one row per event
(:func:`attribution_assets.pipeline.posterior.posterior_row`).

Path: ``OUTPUT/posteriors/week=YYYY-Www/<event_key>.parquet``. The row's ``instrument_outcomes``
(JSON, instrument -> outcome) says what became of every instrument's data.
"""

import arviz as az
import geopandas as gpd
import xarray as xr
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from attribution_assets.assets.common import event_of
from attribution_assets.assets.outcomes import event_instrument_outcomes
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.events import registered_events
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.posterior import alert_score, posterior_row
from attribution_assets.pipeline.provenance import provenance_json
from attribution_assets.resources import AnalysisSettings, OutputStore
from attribution_assets.science.inversion import PosteriorSummary


@asset(
    partitions_def=detection_events,
    group_name="outputs",
    description="The event's posterior as one GeoParquet row (schema in the README), written atomically "
    "into its ISO-week partition of the posterior dataset.",
)
def event_posterior(
    context: AssetExecutionContext,
    source_posterior: az.InferenceData,
    event_overpasses: gpd.GeoDataFrame,
    met_conditions: xr.Dataset,
    quantification_baselines: gpd.GeoDataFrame,
    source_attribution: gpd.GeoDataFrame,
    settings: AnalysisSettings,
    store: OutputStore,
) -> MaterializeResult:
    event = event_of(context)
    event = {e.key: e for e in registered_events(store.event_registry_path)}.get(event.key, event)
    analysis = settings.event_settings()
    outcomes = event_instrument_outcomes(context, event.key)
    summary = PosteriorSummary.from_attrs(source_posterior.posterior.attrs)
    score = alert_score(
        source_posterior.posterior["emission_rate_kg_h"].values, analysis.alert_threshold_kg_h(event.gas)
    )
    provenance = provenance_json(
        event_overpasses, list(summary.granules), met_conditions, analysis, event.gas
    )
    row = posterior_row(
        event, summary, score, quantification_baselines, source_attribution, outcomes, provenance
    )
    path = write_geoparquet(row, store.posterior_path(event.iso_week, event.key))
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(path)),
            "week": event.iso_week,
            "emission_rate_kg_h": float(summary.emission_rate_kg_h),
            "detected": bool(summary.detected),
            "alert_score": score,
            "instruments": ",".join(summary.instruments),
            "instrument_outcomes": MetadataValue.json(outcomes),
        }
    )
