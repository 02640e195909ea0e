"""AOI extraction: for each instrument, read only the event's AOI from every granule that covers it.

Each asset returns one dataset per granule (an empty mapping when the instrument has no overpass,
which is a normal outcome). A granule that cannot be read is logged with the reason and skipped, so
one bad file never stops the event.
"""

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import xarray as xr
from dagster import AssetExecutionContext, AssetsDefinition, MetadataValue, asset

from attribution_assets.assets.common import INSTRUMENT_GAS, event_of
from attribution_assets.partitions import detection_events
from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.ghgsat import read_ghgsat_l2
from attribution_assets.readers.oco2 import read_oco2_lite
from attribution_assets.readers.tropomi import read_tropomi_ch4
from attribution_assets.resources import AnalysisSettings

Reader = Callable[..., xr.Dataset]


def read_aoi(
    context: AssetExecutionContext,
    overpasses: gpd.GeoDataFrame,
    instrument: str,
    reader: Reader,
    settings: AnalysisSettings,
) -> dict[str, xr.Dataset]:
    """Read the AOI of every file of ``instrument`` listed for the event; log and skip unusable ones."""
    event = event_of(context)
    if INSTRUMENT_GAS[instrument] != event.gas:
        context.add_output_metadata(
            {
                "granules_read": 0,
                "outcomes": MetadataValue.json({"-": f"{instrument} does not measure {event.gas}"}),
            }
        )
        return {}
    bbox = settings.bbox(event, settings.half_width_km(instrument))
    paths = list(dict.fromkeys(overpasses.loc[overpasses["instrument"] == instrument, "path"]))
    datasets: dict[str, xr.Dataset] = {}
    outcomes: dict[str, str] = {}
    for path in paths:
        name = Path(path).name
        try:
            datasets[Path(path).stem] = reader(path, bbox=bbox)
            outcomes[name] = "read"
        except EmptyAOIError as error:
            outcomes[name] = f"no data in AOI ({error.reason or 'outside footprint'})"
            context.log.info(f"{instrument}: {error}")
        except (ProductFormatError, OSError) as error:
            outcomes[name] = f"rejected: {error}"
            context.log.error(f"{instrument}: skipping unreadable granule: {error}")
    if not paths:
        context.log.info(f"{instrument}: no overpass for {event.key}")
    context.add_output_metadata(
        {
            "granules_read": len(datasets),
            "outcomes": MetadataValue.json(outcomes or {"-": "no overpass"}),
            "aoi_bbox": MetadataValue.json(list(bbox)),
            "observations": sum(int(next(iter(ds.sizes.values()), 0)) for ds in datasets.values()),
        }
    )
    return datasets


def _aoi_asset(instrument: str, reader: Reader, description: str) -> AssetsDefinition:
    @asset(
        name=f"{instrument.lower()}_aoi",
        partitions_def=detection_events,
        group_name="aoi",
        description=description,
    )
    def _aoi(
        context: AssetExecutionContext, event_overpasses: gpd.GeoDataFrame, settings: AnalysisSettings
    ) -> dict[str, xr.Dataset]:
        return read_aoi(context, event_overpasses, instrument, reader, settings)

    return _aoi


emit_aoi = _aoi_asset(
    "EMIT", read_emit_l1b, "EMIT L1B radiance window covering the AOI (raw geometry + GLT)."
)
tropomi_aoi = _aoi_asset(
    "TROPOMI", read_tropomi_ch4, "TROPOMI L2 CH4 pixels (qa >= 0.5) with averaging kernels over the AOI."
)
ghgsat_aoi = _aoi_asset("GHGSAT", read_ghgsat_l2, "GHGSat L2 XCH4 over the AOI.")
oco2_aoi = _aoi_asset("OCO2", read_oco2_lite, "OCO-2 Lite XCO2 soundings over the AOI.")
