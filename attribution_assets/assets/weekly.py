"""Weekly roll-up of the posterior dataset.

An unpartitioned asset that maintains ``week=YYYY-Www`` partitions of its dataset: a week is rebuilt
only when one of its event files is newer than the week's roll-up, so a run after one event's
materialisation touches only that event's week.
"""

from pathlib import Path

import duckdb
import geopandas as gpd
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
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.resources import OutputStore


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
