"""The operator alert list per ISO week: detected events whose alert score passes the threshold."""

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from attribution_assets.assets.weekly import stale_weeks, weekly_posteriors
from attribution_assets.atomic import atomic_path
from attribution_assets.catalog.store import read_geoparquet
from attribution_assets.csv_safety import write_safe_csv
from attribution_assets.resources import OutputStore
from attribution_assets.times import iso_z

ALERT_SCORE_MIN = 0.5
ALERT_COLUMNS = [
    "event_key",
    "event_id",
    "event_time",
    "gas",
    "source_lon",
    "source_lat",
    "emission_rate_kg_h",
    "emission_rate_kg_h_p05",
    "emission_rate_kg_h_p95",
    "alert_score",
    "instruments",
]


def write_alerts(frame: gpd.GeoDataFrame, week_dir: Path) -> int:
    """Write detected events with ``alert_score >= 0.5`` as ``alerts.geojson`` and ``alerts.csv``.

    The CSV is formula-safe (:mod:`attribution_assets.csv_safety`): analysts open it in spreadsheets.

    Returns the number of alerts.
    """
    alerts = frame[frame["detected"].astype(bool) & (frame["alert_score"] >= ALERT_SCORE_MIN)]
    alerts = alerts[[c for c in ALERT_COLUMNS if c in alerts.columns] + ["geometry"]].copy()
    alerts["event_time"] = pd.to_datetime(alerts["event_time"], utc=True).map(iso_z)
    write_safe_csv(alerts.drop(columns="geometry"), week_dir / "alerts.csv")
    with atomic_path(week_dir / "alerts.geojson") as tmp:
        tmp.write_text(json.dumps(json.loads(alerts.to_json()), indent=1))
    return len(alerts)


@asset(
    deps=[weekly_posteriors],
    group_name="outputs",
    description="Operator alerts per ISO week: detected events whose posterior probability of exceeding "
    "the alert threshold is at least 0.5 (GeoJSON + CSV).",
)
def alerts(context: AssetExecutionContext, store: OutputStore) -> MaterializeResult:
    written = {}
    for week_dir in stale_weeks(store.weekly_dir, store.weekly_dir, "alerts.geojson"):
        rollup = week_dir / "posteriors.parquet"
        written[week_dir.name] = write_alerts(read_geoparquet(rollup), week_dir)
    return MaterializeResult(metadata={"alerts_per_week": MetadataValue.json(written)})
