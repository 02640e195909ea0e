"""Single-image quantification baselines (IME, CSF) per instrument overpass
(:func:`attribution_assets.pipeline.baselines.quantify_baselines`)."""

import geopandas as gpd
import xarray as xr
from dagster import AssetExecutionContext, asset

from attribution_assets.assets.common import CODE_VERSION, ROW_COUNT, TABLE_KINDS, event_of, table_metadata
from attribution_assets.partitions import detection_events


@asset(
    partitions_def=detection_events,
    group_name="forward",
    kinds=TABLE_KINDS,
    code_version=CODE_VERSION,
    description="IME (EMIT, GHGSat) and CSF (EMIT) emission estimates with Monte-Carlo uncertainty and "
    "per-instrument effective-wind calibrations, reported next to the Bayesian posterior.",
)
def quantification_baselines(
    context: AssetExecutionContext,
    emit_enhancement: dict[str, xr.Dataset],
    ghgsat_aoi: dict[str, xr.Dataset],
    met_conditions: xr.Dataset,
) -> gpd.GeoDataFrame:
    from attribution_assets.pipeline.baselines import quantify_baselines  # SciPy: when the step runs

    table = quantify_baselines(event_of(context), emit_enhancement, ghgsat_aoi, met_conditions)
    context.add_output_metadata({"estimates": table_metadata(table), ROW_COUNT: len(table)})
    return table
