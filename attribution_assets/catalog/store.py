"""The overpass catalog on disk: GeoParquet 1.1 with a ``bbox`` covering column, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd


def write_geoparquet(frame: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as GeoParquet 1.1 (WKB geometry + ``bbox`` struct) via a temporary file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False, write_covering_bbox=True, schema_version="1.1.0", row_group_size=65536)
    os.replace(tmp, path)
    return path


def read_geoparquet(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """Read a GeoParquet file written by :func:`write_geoparquet` (the ``bbox`` column is dropped)."""
    frame = gpd.read_parquet(path)
    return frame.drop(columns=["bbox"], errors="ignore")
