"""Met preparation: the wind, stability and boundary layer at the source for every overpass
(:func:`attribution_assets.pipeline.met.prepare_met`; a calm is noted per overpass in the
``overpasses`` metadata)."""

import geopandas as gpd
import xarray as xr
from dagster import AssetExecutionContext, asset

from attribution_assets.assets.common import CODE_VERSION, NETCDF_KINDS, ROW_COUNT, event_of, table_metadata
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.met import met_table, prepare_met


@asset(
    partitions_def=detection_events,
    group_name="met",
    kinds=NETCDF_KINDS,
    code_version=CODE_VERSION,
    description="Wind at the source for each overpass (10 m and boundary-layer mean, interpolated in space "
    "and time from WRF where it covers the event, else ERA5), wind uncertainty, Pasquill-Gifford "
    "stability and boundary-layer height.",
)
def met_conditions(
    context: AssetExecutionContext,
    event_overpasses: gpd.GeoDataFrame,
    emit_aoi: dict[str, xr.Dataset],
    tropomi_aoi: dict[str, xr.Dataset],
    ghgsat_aoi: dict[str, xr.Dataset],
    oco2_aoi: dict[str, xr.Dataset],
) -> xr.Dataset:
    aois = {"EMIT": emit_aoi, "GHGSAT": ghgsat_aoi, "TROPOMI": tropomi_aoi, "OCO2": oco2_aoi}
    result = prepare_met(event_of(context), event_overpasses, aois, context.log)
    table = met_table(result)
    context.add_output_metadata({"overpasses": table_metadata(table, 2), ROW_COUNT: len(table)})
    return result
