"""A week's alerts as files: GeoParquet (``alerts.parquet``), GeoJSON (``alerts.geojson``) and
formula-safe CSV (``alerts.csv``), all written atomically into the week's folder.

One record per alert payload (:func:`~attribution_assets.alerting.payload.alert_payload`): the same
fields and units (rates in kg/h, positions in degrees, probabilities in [0, 1]). The point geometry is
the posterior mean source position (``lon``, ``lat``). The plume mask polygon is a second geometry
column ``plume`` in GeoParquet, a GeoJSON geometry in the ``plume`` property of the GeoJSON feature and
WKT text in the CSV. ``provenance`` is a JSON object in GeoJSON and JSON text in the other two.

Pure: no Dagster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from attribution_assets.atomic import atomic_path
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.csv_safety import write_safe_csv

ALERT_FILES = ("alerts.parquet", "alerts.geojson", "alerts.csv")


def alerts_table(payloads: Sequence[Mapping[str, Any]]) -> gpd.GeoDataFrame:
    """The payloads as a GeoDataFrame (EPSG:4326): one row per alert, columns in payload order,
    ``instruments`` joined by ``,``, ``provenance`` as JSON text, ``plume`` a geometry column."""
    rows = []
    for payload in payloads:
        row = dict(payload)
        row["instruments"] = ",".join(payload.get("instruments") or [])
        plume = payload.get("plume")
        row["plume"] = shapely.geometry.shape(plume) if plume else None
        provenance = payload.get("provenance")
        if not isinstance(provenance, str):
            row["provenance"] = json.dumps(provenance, sort_keys=True)
        rows.append(row)
    frame = pd.DataFrame(rows)
    points = [shapely.Point(r["lon"], r["lat"]) if r["lon"] is not None else None for r in rows]
    table = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(points, crs="EPSG:4326"), crs="EPSG:4326")
    if len(rows):
        table["plume"] = gpd.GeoSeries(table["plume"], crs="EPSG:4326")
    return table


def geojson_document(payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection: a Point feature (source position) per alert, every payload field
    as a property (``plume`` a GeoJSON geometry, ``provenance`` an object)."""
    features = [
        {
            "type": "Feature",
            "geometry": (
                {"type": "Point", "coordinates": [p["lon"], p["lat"]]} if p.get("lon") is not None else None
            ),
            "properties": dict(p),
        }
        for p in payloads
    ]
    return {"type": "FeatureCollection", "features": features}


def csv_frame(table: gpd.GeoDataFrame) -> pd.DataFrame:
    """The table for the CSV: geometry dropped (``lat``/``lon`` stay), ``plume`` as WKT text."""
    frame = pd.DataFrame(table.drop(columns="geometry"))
    if "plume" in frame:
        frame["plume"] = [geom.wkt if geom is not None else "" for geom in table["plume"]]
    return frame


def write_alerts(payloads: Sequence[Mapping[str, Any]], week_dir: str | Path) -> dict[str, Path]:
    """Write ``alerts.parquet`` (GeoParquet 1.1), ``alerts.geojson`` and ``alerts.csv`` (formula-safe:
    analysts open it in spreadsheets; :mod:`attribution_assets.csv_safety`) into ``week_dir``; returns
    the paths by format. A week without alerts gets files without rows."""
    week_dir = Path(week_dir)
    table = alerts_table(payloads)
    paths = {name.split(".")[1]: week_dir / name for name in ALERT_FILES}
    if len(table):
        write_geoparquet(table, paths["parquet"])
    else:  # no rows: no bbox covering column to compute
        with atomic_path(paths["parquet"]) as tmp:
            table.to_parquet(tmp, index=False, schema_version="1.1.0")
    with atomic_path(paths["geojson"]) as tmp:
        tmp.write_text(json.dumps(geojson_document(payloads), indent=1, allow_nan=False))
    write_safe_csv(csv_frame(table), paths["csv"])
    return paths
