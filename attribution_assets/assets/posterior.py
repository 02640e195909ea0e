"""GeoParquet posterior partitions: one row per event.

Path: ``OUTPUT/posteriors/week=YYYY-Www/<event_key>.parquet``.
"""

import json

import arviz as az
import geopandas as gpd
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from shapely.geometry import Point

from attribution_assets.assets.common import event_of
from attribution_assets.assets.provenance import provenance_json
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.events import DetectionEvent, registered_events
from attribution_assets.partitions import detection_events
from attribution_assets.resources import AnalysisSettings, OutputStore

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


def posterior_row(event: DetectionEvent, summary: dict, score: float, provenance: str) -> gpd.GeoDataFrame:
    """The one-row GeoDataFrame of the output schema (geometry = posterior mean source position)."""
    row = {
        "event_key": event.key,
        "event_id": event.event_id or event.key,
        "event_time": pd.Timestamp(event.time),
        "gas": event.gas,
        "latitude": event.latitude,
        "longitude": event.longitude,
        **{name: summary[name] for name in SUMMARY_COLUMNS},
        "instruments": summary["instruments"],
        "alert_score": score,
        "provenance": provenance,
    }
    frame = pd.DataFrame([row])
    frame["detected"] = frame["detected"].astype(bool)
    frame["divergences"] = frame["divergences"].astype("int64")
    return gpd.GeoDataFrame(
        frame, geometry=[Point(summary["source_lon"], summary["source_lat"])], crs="EPSG:4326"
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
    settings: AnalysisSettings,
    store: OutputStore,
) -> MaterializeResult:
    event = event_of(context)
    known = {e.key: e for e in registered_events(store.event_registry_path)}
    event = known.get(event.key, event)
    summary = json.loads(source_posterior.posterior.attrs["summary"])
    score = alert_score(
        source_posterior.posterior["emission_rate_kg_h"].values, settings.alert_threshold_kg_h(event.gas)
    )
    row = posterior_row(event, summary, score, provenance_json(event_overpasses, summary["granules"]))
    path = write_geoparquet(row, store.posterior_path(event.iso_week, event.key))
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(path)),
            "week": event.iso_week,
            "emission_rate_kg_h": float(summary["emission_rate_kg_h"]),
            "detected": bool(summary["detected"]),
            "alert_score": score,
            "instruments": summary["instruments"],
        }
    )
