"""Weekly roll-ups of the posterior dataset and the operator alert list.

Both are unpartitioned assets that maintain ``week=YYYY-Www`` partitions of their datasets: a week
is rebuilt only when one of its event files is newer than the week's roll-up, so a run after one
event's materialisation touches only that event's week.
"""

import json
from pathlib import Path

import duckdb
import geopandas as gpd
import pandas as pd
import shapely
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from attribution_assets.assets.posterior import event_posterior
from attribution_assets.atomic import atomic_path
from attribution_assets.catalog.store import read_geoparquet, write_geoparquet
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


def read_week(week_dir: Path) -> gpd.GeoDataFrame:
    """All event rows of one week (DuckDB over the partition's files, schemas unioned by name)."""
    with duckdb.connect() as con:
        frame = (
            con.sql(
                "SELECT * EXCLUDE (bbox) FROM read_parquet($glob, union_by_name = true) "
                "ORDER BY event_time, event_key",
                params={"glob": str(week_dir / "*.parquet")},
            )
            .to_arrow_table()
            .to_pandas()
        )
    geometry = shapely.from_wkb([bytes(value) for value in frame.pop("geometry")])
    return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")


def stale_weeks(source_dir: Path, target_dir: Path, target_name: str) -> list[Path]:
    """Week folders under ``source_dir`` whose ``target_dir/<week>/<target_name>`` is missing or older."""
    stale = []
    for week_dir in sorted(source_dir.glob("week=*")):
        files = list(week_dir.glob("*.parquet"))
        target = target_dir / week_dir.name / target_name
        newest = max((f.stat().st_mtime_ns for f in files), default=0)
        if files and (not target.exists() or target.stat().st_mtime_ns < newest):
            stale.append(week_dir)
    return stale


@asset(
    deps=[AssetDep(event_posterior, partition_mapping=AllPartitionMapping())],
    group_name="outputs",
    description="Weekly roll-up of the event posteriors (GeoParquet per ISO week).",
)
def weekly_posteriors(context: AssetExecutionContext, store: OutputStore) -> MaterializeResult:
    rebuilt = {}
    for week_dir in stale_weeks(store.posteriors_dir, store.weekly_dir, "posteriors.parquet"):
        frame = read_week(week_dir)
        write_geoparquet(frame, store.weekly_dir / week_dir.name / "posteriors.parquet")
        rebuilt[week_dir.name] = len(frame)
        context.log.info(f"{week_dir.name}: {len(frame)} events")
    weeks = sorted(p.name for p in store.weekly_dir.glob("week=*")) if store.weekly_dir.exists() else []
    return MaterializeResult(
        metadata={
            "weeks_rebuilt": MetadataValue.json(rebuilt),
            "weeks": len(weeks),
            "root": MetadataValue.path(str(store.weekly_dir)),
        }
    )


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
