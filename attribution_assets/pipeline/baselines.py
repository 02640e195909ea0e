"""Single-image quantification baselines of one event (IME, CSF) per instrument overpass, reported
next to the Bayesian posterior."""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import pandas as pd
import xarray as xr

from attribution_assets.events import DetectionEvent
from attribution_assets.pipeline.met import granule_winds
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.quantification.baselines import Baseline, emit_baselines, ghgsat_baselines

BASELINE_COLUMNS = [
    "instrument",
    "granule",
    "method",
    "rate_kg_h",
    "rate_kg_h_sd",
    "rate_kg_h_p05",
    "rate_kg_h_p95",
    "plume_pixels",
]


def baselines_table(rows: list[tuple[str, Baseline]]) -> gpd.GeoDataFrame:
    """One row per (granule, estimator); geometry = the plume mask outline where known."""
    records = [
        {
            "instrument": b.result.instrument,
            "granule": granule,
            "method": b.result.method,
            "rate_kg_h": b.result.rate_kg_h,
            "rate_kg_h_sd": b.result.rate_kg_h_sd,
            "rate_kg_h_p05": b.result.rate_kg_h_p05,
            "rate_kg_h_p95": b.result.rate_kg_h_p95,
            "plume_pixels": b.plume_pixels,
        }
        for granule, b in rows
    ]
    frame = pd.DataFrame(records, columns=BASELINE_COLUMNS)
    return gpd.GeoDataFrame(frame, geometry=[b.polygon for _, b in rows], crs="EPSG:4326")


def quantify_baselines(
    event: DetectionEvent,
    emit_enhancement: Mapping[str, xr.Dataset],
    ghgsat_aoi: Mapping[str, xr.Dataset],
    met: xr.Dataset,
) -> gpd.GeoDataFrame:
    """IME and CSF (EMIT) and IME (GHGSat) estimates of every granule with a plume mask."""
    frame = LocalFrame(event.longitude, event.latitude)
    winds = granule_winds(met)
    rows: list[tuple[str, Baseline]] = []
    for granule, enh in sorted(emit_enhancement.items()):
        rows += [(granule, b) for b in emit_baselines(enh, winds[granule], frame)]
    for granule, ds in sorted(ghgsat_aoi.items()):
        rows += [(granule, b) for b in ghgsat_baselines(ds, winds[granule], frame)]
    return baselines_table(rows)
