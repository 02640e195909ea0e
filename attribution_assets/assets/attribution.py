"""Source attribution: which inventory facility (or an unlisted source) the posterior points to
(:func:`attribution_assets.pipeline.attribution.attribute`).

The metadata name the *top hypothesis* (a listed facility or ``"unlisted"``) exactly as the posterior
row does (:func:`attribution_assets.pipeline.posterior.attribution_columns`), never the best listed
facility when an unlisted source is more probable. The ``attribution_ess`` check judges the weights.
"""

import geopandas as gpd
import pandas as pd
from dagster import AssetExecutionContext, AssetIn, asset

from attribution_assets.assets.common import (
    CODE_VERSION,
    INFERENCE_DATA,
    ROW_COUNT,
    TABLE_KINDS,
    InferenceData,
    event_of,
    table_metadata,
)
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.posterior import attribution_columns
from attribution_assets.resources import AnalysisSettings

RANKED_COLUMNS = ["rank", "facility_id", "name", "sector", "distance_m", "probability"]
"""Columns of the ranked-hypotheses table in the metadata (distance from the posterior mean, m)."""


def ranked_table(table: pd.DataFrame) -> pd.DataFrame:
    """The hypotheses by decreasing probability (ties by id), ranked from 1, rounded for people:
    distance in m (0 decimals), probability to 3 decimals."""
    ranked = table.sort_values(["probability", "facility_id"], ascending=[False, True]).reset_index(drop=True)
    ranked = ranked.assign(
        rank=range(1, len(ranked) + 1),
        sector=ranked.get("sector", pd.Series([None] * len(ranked))).fillna("-"),
        distance_m=ranked["distance_m"].round(0) if "distance_m" in ranked else float("nan"),
        probability=ranked["probability"].round(3),
    )
    return ranked[RANKED_COLUMNS]


def attribution_metadata(table: pd.DataFrame) -> dict[str, object]:
    """The top hypothesis (as in the posterior row), its probability and ``p_unlisted_source`` rounded
    to 3 decimals, and the ranked table with its row count."""
    top = attribution_columns(table)
    return {
        "attributed_facility_id": top["attributed_facility_id"],
        "attributed_facility_name": top["attributed_facility_name"],
        "attributed_probability": round(float(top["attributed_probability"]), 3),
        "p_unlisted_source": round(float(top["p_unlisted_source"]), 3),
        "ranked": table_metadata(ranked_table(table), {"distance_m": 0, "probability": 3}),
        ROW_COUNT: len(table),
    }


@asset(
    partitions_def=detection_events,
    group_name="inversion",
    ins={"source_posterior": AssetIn(dagster_type=INFERENCE_DATA)},
    kinds=TABLE_KINDS,
    code_version=CODE_VERSION,
    description="Posterior probability that the source is each inventory facility inside the AOI (power "
    "plants for CO2; the facility list and EDGAR cells for CH4) or a source not in the inventory.",
)
def source_attribution(
    context: AssetExecutionContext, source_posterior: InferenceData, settings: AnalysisSettings
) -> gpd.GeoDataFrame:
    from attribution_assets.pipeline.attribution import attribute, load_candidates  # JAX: on use

    event = event_of(context)
    analysis = settings.event_settings()
    candidates = load_candidates(event, analysis, context.log)
    table, result = attribute(event, source_posterior, candidates, analysis)
    if result is None:
        context.log.info("no posterior draw has a source: nothing to attribute")
        context.add_output_metadata(
            {"candidates": len(candidates), "attributed_facility_id": "no source", ROW_COUNT: 0}
        )
        return table
    context.add_output_metadata(
        {
            **attribution_metadata(table),
            "candidates": len(candidates),
            "attribution_ess": round(result.prior_correction_ess, 1),
            "attribution_draws": result.n_draws,
        }
    )
    return table
