"""Catalog queries with DuckDB: bounding-box and time predicates on the GeoParquet ``bbox`` covering
column (row groups are pruned on their statistics), then the exact footprint intersection."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime

import duckdb
import geopandas as gpd
import pandas as pd
import shapely

from attribution_assets.catalog.crawl import empty_catalog

_SQL = """
SELECT * EXCLUDE (bbox) FROM read_parquet($path)
WHERE bbox.xmax >= $west AND bbox.xmin <= $east AND bbox.ymax >= $south AND bbox.ymin <= $north
  AND time_end >= $t0 AND time_start <= $t1
"""


def query_overpasses(
    catalog_path: str | os.PathLike[str],
    bbox: tuple[float, float, float, float],
    time_start: datetime,
    time_end: datetime,
    instruments: Sequence[str] | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> gpd.GeoDataFrame:
    """Catalog rows whose footprint intersects ``bbox`` (west, south, east, north; degrees) and whose
    time span overlaps [``time_start``, ``time_end``] (aware UTC datetimes), optionally only for
    ``instruments``. Sorted by instrument and time."""
    west, south, east, north = bbox
    sql = _SQL
    params: dict[str, object] = {"path": str(catalog_path), "west": west, "east": east, "south": south,
                                 "north": north, "t0": pd.Timestamp(time_start), "t1": pd.Timestamp(time_end)}
    if instruments:
        sql += " AND list_contains($instruments, instrument)"
        params["instruments"] = list(instruments)
    con = connection or duckdb.connect()
    try:
        frame = con.sql(sql, params=params).to_arrow_table().to_pandas()
    finally:
        if connection is None:
            con.close()
    if frame.empty:
        return empty_catalog()
    geometry = shapely.from_wkb([bytes(value) for value in frame.pop("geometry")])
    result = gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")
    result = result[result.intersects(shapely.box(west, south, east, north))]
    return result.sort_values(["instrument", "time_start", "granule_id"]).reset_index(drop=True)
