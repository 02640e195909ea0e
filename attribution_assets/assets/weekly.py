"""Weekly roll-up of the posterior dataset, one partition per ISO week.

The partition key of ``weekly_posteriors`` is the Monday of the ISO week (``YYYY-MM-DD``, see
:data:`attribution_assets.partitions.weekly_partitions`); it reads the event posteriors of that week
(``OUTPUT/posteriors/week=YYYY-Www/*.parquet``) and writes ``OUTPUT/weekly/week=YYYY-Www/posteriors.parquet``.
A rebuild reads the week's files as they are now, so an event whose posterior file was removed leaves
the week's roll-up; a week with no event file left has its roll-up removed.

The dependency on ``event_posterior`` uses ``AllPartitionMapping``: Dagster has no built-in mapping
from dynamic event keys to time windows (custom partition mappings are dropped from the remote asset
graph the daemon and the UI see), and the week's events are what the store holds for that week. In a
backfill it orders the roll-up after every targeted event partition (see
:mod:`attribution_assets.orchestration.backfill`).
"""

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from attribution_assets.assets.common import CODE_VERSION, figure_metadata
from attribution_assets.assets.posterior import event_posterior
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.partitions import week_of_partition, weekly_partitions
from attribution_assets.pipeline.settings import EventSettings
from attribution_assets.readers.errors import EmptyAOIError
from attribution_assets.readers.inventory import read_facility_list, read_wri_gppd
from attribution_assets.resources import AnalysisSettings, OutputStore

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ROLLUP_NAME = "posteriors.parquet"
"""File name of a week's roll-up inside ``OUTPUT/weekly/week=YYYY-Www/``."""
MAP_MARGIN_DEG = 0.05
"""Margin around the week's events of the facilities shown on the map, degrees."""
TABLE_COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("event_id", "string", "operator label (or event key)", -1),
    ("event_time", "string", "UTC, ISO 8601", -1),
    ("gas", "string", "CH4 or CO2", -1),
    ("emission_rate_kg_h", "float", "posterior mean, kg/h", 0),
    ("emission_rate_kg_h_p05", "float", "5th percentile, kg/h", 0),
    ("emission_rate_kg_h_p95", "float", "95th percentile, kg/h", 0),
    ("emission_rate_lower_limit_kg_h", "float", "90 % confidence interval, lower end, kg/h", 0),
    ("emission_rate_upper_limit_kg_h", "float", "90 % confidence interval, upper end, kg/h", 0),
    ("p_source", "float", "posterior probability of a source (0-1)", 3),
    ("alert_score", "float", "P(rate > alert threshold) (0-1)", 3),
    ("source_lat", "float", "posterior mean source latitude, degrees", 4),
    ("source_lon", "float", "posterior mean source longitude, degrees", 4),
    ("source_location_sd_m", "float", "source position sd, m", 0),
    ("detected", "bool", "source detected", -1),
    ("instruments", "string", "instruments in the inversion", -1),
)
"""Columns of the roll-up's metadata table: name, type, description with unit, decimals (-1: as is)."""


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


def rollup_week(store: OutputStore, week: str) -> tuple[gpd.GeoDataFrame | None, Path]:
    """Rebuild the roll-up of ISO week ``week`` (``YYYY-Www``) from its event files as they are now.

    Returns the week's rows (``None`` when no event file is left, in which case an earlier roll-up is
    removed) and the roll-up's path.
    """
    source = store.posteriors_dir / f"week={week}"
    target = store.weekly_dir / f"week={week}" / ROLLUP_NAME
    if not any(source.glob("*.parquet")):
        target.unlink(missing_ok=True)
        return None, target
    frame = read_week(source)
    write_geoparquet(frame, target)
    return frame, target


def week_facilities(settings: EventSettings, frame: pd.DataFrame) -> pd.DataFrame:
    """Inventory facilities (the facility list and the power plants) within :data:`MAP_MARGIN_DEG` of
    the week's events; empty when neither inventory is configured or none lies there."""
    lon = pd.concat([frame["longitude"], frame["source_lon"]]).astype(float)
    lat = pd.concat([frame["latitude"], frame["source_lat"]]).astype(float)
    bbox = (
        max(lon.min() - MAP_MARGIN_DEG, -180.0), max(lat.min() - MAP_MARGIN_DEG, -90.0),
        min(lon.max() + MAP_MARGIN_DEG, 180.0), min(lat.max() + MAP_MARGIN_DEG, 90.0),
    )
    found = []
    inventories = ((settings.facility_list, read_facility_list), (settings.power_plants, read_wri_gppd))
    for path, reader in inventories:
        if not path:
            continue
        try:
            found.append(reader(path, bbox))
        except EmptyAOIError:  # no facility of this inventory near the week's events
            continue
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=["longitude", "latitude"])


def week_figure(frame: pd.DataFrame, facilities: pd.DataFrame, week: str) -> "Figure":
    """Map of the week's events (posterior source position; colour: ``p_source``, area: emission rate)
    with the inventory facilities, and one emission-rate panel per gas (mean and 90 % interval; kg/h,
    t/h for CO2)."""
    from attribution_assets.pipeline.figures import geographic_axes, new_figure, rate_unit  # Matplotlib

    gases = sorted(frame["gas"].unique())
    fig, axes = new_figure(1, 1 + len(gases), figsize=(5.5 + 4.0 * len(gases), 4.4), squeeze=False)
    ax_map = axes[0, 0]
    rate = frame["emission_rate_kg_h"].astype(float).clip(lower=0.0).to_numpy()
    # marker area ~ rate relative to the largest of its gas (CO2 and CH4 rates differ by orders of magnitude)
    largest = frame.groupby("gas")["emission_rate_kg_h"].transform("max").astype(float).to_numpy()
    area = 20.0 + 280.0 * np.divide(rate, largest, out=np.zeros_like(rate), where=largest > 0)
    if len(facilities):
        ax_map.scatter(facilities["longitude"], facilities["latitude"], marker="^", s=30, c="0.4",
                       label="inventory facility")
    art = ax_map.scatter(frame["source_lon"], frame["source_lat"], c=frame["p_source"].astype(float),
                         s=area, cmap="viridis", vmin=0.0, vmax=1.0, edgecolors="k")
    # the legend's marker stands for every event (an empty, uncoloured proxy), not for one of them
    ax_map.scatter([], [], s=60, facecolors="none", edgecolors="k", label="event source (colour: P(source))")
    fig.colorbar(art, ax=ax_map, label="P(source)")
    geographic_axes(ax_map)
    ax_map.margins(0.15)
    events = f"{len(frame)} event{'' if len(frame) == 1 else 's'}"
    ax_map.set_title(f"{week}: {events} (area ~ rate within its gas)", fontsize=9)
    ax_map.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    for ax, gas in zip(axes[0, 1:], gases, strict=True):
        rows = frame[frame["gas"] == gas].sort_values("event_time")
        scale, unit = rate_unit(gas)
        mean = rows["emission_rate_kg_h"].astype(float).to_numpy() * scale
        low = mean - rows["emission_rate_kg_h_p05"].astype(float).to_numpy() * scale
        high = rows["emission_rate_kg_h_p95"].astype(float).to_numpy() * scale - mean
        ax.errorbar(np.arange(len(rows)), mean, yerr=[np.clip(low, 0, None), np.clip(high, 0, None)],
                    fmt="o", capsize=3)
        ax.set_xticks(np.arange(len(rows)), [str(label)[:14] for label in rows["event_id"]],
                      rotation=60, fontsize=6, ha="right")
        ax.set_ylabel(f"{gas} emission rate ({unit})")
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.set_title(f"{gas}: posterior mean and 90 % interval", fontsize=9)
    fig.tight_layout()
    return fig


def _cell(value: object, kind: str, decimals: int) -> object:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if kind == "float":
        return round(float(value), decimals) if decimals > 0 else float(round(float(value)))
    if kind == "bool":
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def week_table(frame: pd.DataFrame) -> MetadataValue:
    """The week's events as a ``MetadataValue.table``: rounded numbers, units in the column descriptions."""
    columns = [c for c in TABLE_COLUMNS if c[0] in frame.columns]
    schema = TableSchema(columns=[TableColumn(name, kind, text) for name, kind, text, _ in columns])
    records = [
        TableRecord({name: _cell(row[name], kind, decimals) for name, kind, _, decimals in columns})
        for _, row in frame.iterrows()
    ]
    return MetadataValue.table(records, schema=schema)


@asset(
    partitions_def=weekly_partitions,
    deps=[AssetDep(event_posterior, partition_mapping=AllPartitionMapping())],
    group_name="outputs",
    kinds={"geoparquet"},
    code_version=CODE_VERSION,
    description="Weekly roll-up of the event posteriors: one GeoParquet per ISO week (partition key = the "
    "week's Monday), rebuilt from the week's event files as they are (a removed event leaves the week).",
)
def weekly_posteriors(
    context: AssetExecutionContext, store: OutputStore, settings: AnalysisSettings
) -> MaterializeResult:
    week = week_of_partition(context.partition_key)
    frame, path = rollup_week(store, week)
    if frame is None:
        context.log.info(f"{week}: no event posterior; roll-up {path} removed")
        return MaterializeResult(
            metadata={"week": week, "dagster/row_count": 0, "path": MetadataValue.path(str(path))}
        )
    context.log.info(f"{week}: {len(frame)} events")
    facilities = week_facilities(settings.event_settings(), frame)
    figure = week_figure(frame, facilities, week)
    figure_path = store.path / "figures" / "weekly_posteriors" / f"week={week}.png"
    by_gas = frame.groupby("gas")["emission_rate_kg_h"]
    return MaterializeResult(
        metadata={
            "week": week,
            "dagster/row_count": len(frame),
            "path": MetadataValue.path(str(path)),
            "events": week_table(frame),
            "detected": int(frame["detected"].astype(bool).sum()),
            "total_emission_kg_h": MetadataValue.json({g: round(float(v)) for g, v in by_gas.sum().items()}),
            **figure_metadata(figure, figure_path),
        }
    )
