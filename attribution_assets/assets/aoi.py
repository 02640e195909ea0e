"""AOI extraction: for each instrument, read only the event's AOI from every granule that covers it
(:func:`attribution_assets.pipeline.aoi.extract_aoi`).

Each asset returns one dataset per granule (an empty mapping when the instrument has no overpass,
which is a normal outcome); the outcome of every file is in the ``outcomes`` metadata.
"""

import geopandas as gpd
import xarray as xr
from dagster import AssetExecutionContext, AssetsDefinition, MetadataValue, asset

from attribution_assets.assets.common import CODE_VERSION, NETCDF_KINDS, event_of
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.aoi import extract_aoi
from attribution_assets.resources import AnalysisSettings


def _aoi_asset(instrument: str, description: str) -> AssetsDefinition:
    @asset(
        name=f"{instrument.lower()}_aoi",
        partitions_def=detection_events,
        group_name="aoi",
        kinds=NETCDF_KINDS,
        code_version=CODE_VERSION,
        description=description,
    )
    def _aoi(
        context: AssetExecutionContext, event_overpasses: gpd.GeoDataFrame, settings: AnalysisSettings
    ) -> dict[str, xr.Dataset]:
        extract = extract_aoi(
            event_of(context), event_overpasses, instrument, settings.event_settings(), context.log
        )
        metadata = {"granules_read": len(extract.datasets), "outcomes": MetadataValue.json(extract.outcomes)}
        if extract.bbox is not None:
            metadata |= {"aoi_bbox": MetadataValue.json(list(extract.bbox)),
                         "observations": extract.observations}
        context.add_output_metadata(metadata)
        return extract.datasets

    return _aoi


emit_aoi = _aoi_asset("EMIT", "EMIT L1B radiance window covering the AOI (raw geometry + GLT).")
tropomi_aoi = _aoi_asset(
    "TROPOMI", "TROPOMI L2 CH4 pixels (qa >= 0.5) with averaging kernels over the AOI."
)
ghgsat_aoi = _aoi_asset("GHGSAT", "GHGSat L2 XCH4 over the AOI.")
oco2_aoi = _aoi_asset("OCO2", "OCO-2 Lite XCO2 soundings over the AOI.")
