"""Source attribution: which inventory facility (or an unlisted source) the posterior points to
(:func:`attribution_assets.pipeline.attribution.attribute`)."""

import arviz as az
import geopandas as gpd
from dagster import AssetExecutionContext, asset

from attribution_assets.assets.common import event_of, table_metadata
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.attribution import attribute, load_candidates
from attribution_assets.resources import AnalysisSettings


@asset(
    partitions_def=detection_events,
    group_name="inversion",
    description="Posterior probability that the source is each inventory facility inside the AOI (power "
    "plants for CO2; the facility list and EDGAR cells for CH4) or a source not in the inventory.",
)
def source_attribution(
    context: AssetExecutionContext, source_posterior: az.InferenceData, settings: AnalysisSettings
) -> gpd.GeoDataFrame:
    event = event_of(context)
    analysis = settings.event_settings()
    candidates = load_candidates(event, analysis, context.log)
    table, result = attribute(event, source_posterior, candidates, analysis)
    if result is None:
        context.log.info("no posterior draw has a source present: nothing to attribute")
        context.add_output_metadata({"candidates": len(candidates), "attributed": "no source"})
        return table
    best = table.iloc[0]
    context.add_output_metadata(
        {
            "attributed_to": str(best["facility_id"]),
            "attributed_name": str(best["name"]),
            "attributed_probability": round(float(best["probability"]), 3),
            "p_unlisted": round(result.p_unlisted, 3),
            "attribution_ess": round(result.prior_correction_ess, 1),
            "table": table_metadata(table[["facility_id", "name", "distance_m", "probability"]].round(3)),
        }
    )
    return table
