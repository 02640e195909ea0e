"""Single-image quantification baselines (IME, CSF) per instrument overpass."""

import geopandas as gpd
import pandas as pd
import xarray as xr
from dagster import AssetExecutionContext, MetadataValue, asset

from attribution_assets.assets.common import event_of
from attribution_assets.assets.met import winds_from_dataset
from attribution_assets.partitions import detection_events
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


@asset(
    partitions_def=detection_events,
    group_name="forward",
    description="IME (EMIT, GHGSat) and CSF (EMIT) emission estimates with Monte-Carlo uncertainty and "
    "per-instrument effective-wind calibrations, reported next to the Bayesian posterior.",
)
def quantification_baselines(
    context: AssetExecutionContext,
    emit_enhancement: dict[str, xr.Dataset],
    ghgsat_aoi: dict[str, xr.Dataset],
    met_conditions: xr.Dataset,
) -> gpd.GeoDataFrame:
    event = event_of(context)
    frame = LocalFrame(event.longitude, event.latitude)
    winds = dict(
        zip(
            [str(g) for g in met_conditions["granule"].values],
            winds_from_dataset(met_conditions),
            strict=True,
        )
    )
    rows: list[tuple[str, Baseline]] = []
    for granule, enh in sorted(emit_enhancement.items()):
        rows += [(granule, b) for b in emit_baselines(enh, winds[granule], frame)]
    for granule, ds in sorted(ghgsat_aoi.items()):
        rows += [(granule, b) for b in ghgsat_baselines(ds, winds[granule], frame)]
    table = baselines_table(rows)
    context.add_output_metadata(
        {
            "estimates": MetadataValue.md(
                table.drop(columns="geometry").round(1).to_markdown(index=False)
                if len(table)
                else "no plume mask"
            )
        }
    )
    return table
