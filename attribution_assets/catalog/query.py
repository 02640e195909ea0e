"""Catalog queries with DuckDB: bounding-box and time predicates on the GeoParquet ``bbox`` covering
column (row groups are pruned on their statistics), then the exact footprint intersection.

A query without a connection runs on its own new connection (``cursor()``) to one in-memory DuckDB
database per process: opening a connection costs microseconds, creating a database 10-30 ms.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import datetime

import duckdb
import geopandas as gpd
import pandas as pd
import shapely

from attribution_assets.catalog.crawl import empty_catalog
from attribution_assets.readers.bbox import longitude_copies

_DATABASE: dict[int, duckdb.DuckDBPyConnection] = {}
_DATABASE_LOCK = threading.Lock()


def new_connection() -> duckdb.DuckDBPyConnection:
    """A new connection to this process's in-memory DuckDB database (created on first use, and again in
    a forked child); close it after use. Connections are independent, so threads may each hold one."""
    with _DATABASE_LOCK:
        database = _DATABASE.get(os.getpid())
        if database is None:
            _DATABASE.clear()
            database = _DATABASE.setdefault(os.getpid(), duckdb.connect())
        return database.cursor()


_SQL = """
SELECT * EXCLUDE (bbox) FROM read_parquet($path)
WHERE bbox.ymax >= $south AND bbox.ymin <= $north AND time_end >= $t0 AND time_start <= $t1
  AND ({longitudes})
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
    ``instruments``. Sorted by instrument and time. Longitudes are compared modulo 360: a box that
    crosses the antimeridian (west > east) or reaches past 180 degrees finds the footprints on its far
    side (:func:`~attribution_assets.readers.bbox.longitude_copies`). Without ``connection`` the query
    runs on a :func:`new_connection`, closed afterwards."""
    _, south, _, north = bbox
    copies = longitude_copies(bbox)
    sql = _SQL.format(longitudes=" OR ".join(
        f"(bbox.xmax >= $west{k} AND bbox.xmin <= $east{k})" for k in range(len(copies))))
    params: dict[str, object] = {
        "path": str(catalog_path),
        **{f"west{k}": copy[0] for k, copy in enumerate(copies)},
        **{f"east{k}": copy[2] for k, copy in enumerate(copies)},
        "south": south,
        "north": north,
        "t0": pd.Timestamp(time_start),
        "t1": pd.Timestamp(time_end),
    }
    if instruments:
        sql += " AND list_contains($instruments, instrument)"
        params["instruments"] = list(instruments)
    con = connection or new_connection()
    try:
        frame = con.sql(sql, params=params).to_arrow_table().to_pandas()
    finally:
        if connection is None:
            con.close()
    if frame.empty:
        return empty_catalog()
    geometry = shapely.from_wkb([bytes(value) for value in frame.pop("geometry")])
    result = gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")
    area = shapely.union_all([shapely.box(*copy) for copy in copies])
    result = result[result.intersects(area)]
    return result.sort_values(["instrument", "time_start", "granule_id"]).reset_index(drop=True)
