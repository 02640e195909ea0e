"""GeoParquet posterior partitions: one row per event.

Path: ``OUTPUT/posteriors/week=YYYY-Www/<event_key>.parquet``. The row's ``instrument_outcomes``
(JSON, instrument -> outcome) says what became of every instrument's data, so an instrument that
dropped out (no overpass, rejected file, 0 valid pixels in the AOI) is recorded, never silent.
"""

import json

import arviz as az
import geopandas as gpd
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from shapely.geometry import Point

from attribution_assets.assets.common import event_of
from attribution_assets.assets.outcomes import event_instrument_outcomes
from attribution_assets.assets.provenance import provenance_json
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.events import DetectionEvent, registered_events
from attribution_assets.partitions import detection_events
from attribution_assets.resources import AnalysisSettings, OutputStore
from attribution_assets.science.attribution import UNLISTED_ID
from attribution_assets.science.inversion import PosteriorSummary

SUMMARY_COLUMNS = (
    "source_lon",
    "source_lat",
    "source_location_sd_m",
    "emission_rate_kg_h",
    "emission_rate_kg_h_p05",
    "emission_rate_kg_h_p50",
    "emission_rate_kg_h_p95",
    "emission_rate_kg_h_sd",
    "p_source",
    "detected",
    "method",
    "r_hat_max",
    "ess_bulk_min",
    "divergences",
    "converged",
)


def alert_score(emission_draws_kg_h: np.ndarray, threshold_kg_h: float) -> float:
    """Posterior probability that the emission rate exceeds the operator alert threshold."""
    draws = np.ravel(emission_draws_kg_h)
    return float(np.mean(draws > threshold_kg_h)) if draws.size else 0.0


def baseline_columns(baselines: gpd.GeoDataFrame) -> dict[str, object]:
    """``ime_*`` and ``csf_*`` columns from the finest instrument (EMIT before GHGSat); NaN if none."""
    columns: dict[str, object] = {}
    for method in ("IME", "CSF"):
        rows = baselines[baselines["method"] == method].sort_values(
            "instrument", key=lambda s: s.map({"EMIT": 0, "GHGSAT": 1}).fillna(2)
        )
        best = rows.iloc[0] if len(rows) else None
        prefix = method.lower()
        columns[f"{prefix}_emission_rate_kg_h"] = float(best["rate_kg_h"]) if best is not None else np.nan
        columns[f"{prefix}_emission_rate_kg_h_sd"] = (
            float(best["rate_kg_h_sd"]) if best is not None else np.nan
        )
        columns[f"{prefix}_instrument"] = str(best["instrument"]) if best is not None else ""
    return columns


def attribution_columns(attribution: gpd.GeoDataFrame) -> dict[str, object]:
    """The most probable listed facility, its probability and that of an unlisted source."""
    listed = attribution[attribution["facility_id"] != UNLISTED_ID]
    best = listed.sort_values("probability", ascending=False).iloc[0] if len(listed) else None
    unlisted = attribution.loc[attribution["facility_id"] == UNLISTED_ID, "probability"]
    return {
        "attributed_facility_id": str(best["facility_id"]) if best is not None else "",
        "attributed_facility_name": str(best["name"]) if best is not None else "",
        "attributed_probability": float(best["probability"]) if best is not None else np.nan,
        "p_unlisted_source": float(unlisted.iloc[0]) if len(unlisted) else np.nan,
    }


def posterior_row(
    event: DetectionEvent, summary: PosteriorSummary, score: float, provenance: str, extra: dict[str, object]
) -> gpd.GeoDataFrame:
    """The one-row GeoDataFrame of the output schema (geometry = posterior mean source position);
    ``extra`` adds the baseline and attribution columns."""
    row = {
        "event_key": event.key,
        "event_id": event.event_id or event.key,
        "event_time": pd.Timestamp(event.time),
        "gas": event.gas,
        "latitude": event.latitude,
        "longitude": event.longitude,
        **{name: getattr(summary, name) for name in SUMMARY_COLUMNS},
        "instruments": ",".join(summary.instruments),
        "alert_score": score,
        **extra,
        "provenance": provenance,
    }
    frame = pd.DataFrame([row])
    frame["detected"] = frame["detected"].astype(bool)
    frame["divergences"] = frame["divergences"].astype("int64")
    return gpd.GeoDataFrame(
        frame, geometry=[Point(summary.source_lon, summary.source_lat)], crs="EPSG:4326"
    )


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
    quantification_baselines: gpd.GeoDataFrame,
    source_attribution: gpd.GeoDataFrame,
    settings: AnalysisSettings,
    store: OutputStore,
) -> MaterializeResult:
    event = event_of(context)
    known = {e.key: e for e in registered_events(store.event_registry_path)}
    event = known.get(event.key, event)
    outcomes = event_instrument_outcomes(context, event.key)
    summary = PosteriorSummary.from_attrs(source_posterior.posterior.attrs)
    score = alert_score(
        source_posterior.posterior["emission_rate_kg_h"].values, settings.alert_threshold_kg_h(event.gas)
    )
    row = posterior_row(
        event,
        summary,
        score,
        provenance_json(event_overpasses, list(summary.granules)),
        {
            **baseline_columns(quantification_baselines),
            **attribution_columns(source_attribution),
            "instrument_outcomes": json.dumps(outcomes, sort_keys=True),
        },
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
