"""The overpass catalog on disk: GeoParquet 1.1 with a ``bbox`` covering column, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd

from attribution_assets.atomic import atomic_path


def write_geoparquet(frame: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as GeoParquet 1.1 (WKB geometry + ``bbox`` struct) via a temporary file + rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_parquet(
            tmp, index=False, write_covering_bbox=True, schema_version="1.1.0", row_group_size=65536
        )
    return path


def read_geoparquet(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """Read a GeoParquet file written by :func:`write_geoparquet` (the ``bbox`` column is dropped)."""
    frame = gpd.read_parquet(path)
    return frame.drop(columns=["bbox"], errors="ignore")
