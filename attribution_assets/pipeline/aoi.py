"""AOI extraction of one event: for each instrument, read only the event's AOI from every granule.

An instrument with no overpass, or one that does not measure the event's gas, gives an empty extract
(a normal outcome). A granule that cannot be read is logged with the reason and skipped, so one bad
file never stops the event; every granule's outcome is recorded, and so is every file the crawl
rejected that would have served the event ("rejected by the catalog crawl: <reason>"), so a broken
file never reads as "no overpass".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import xarray as xr

from attribution_assets.events import DetectionEvent
from attribution_assets.pipeline.overpasses import catalogued, rejected_files, rejection_text
from attribution_assets.pipeline.settings import INSTRUMENT_GAS, INSTRUMENTS, BBox, EventSettings
from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.ghgsat import read_ghgsat_l2
from attribution_assets.readers.oco2 import read_oco2_lite
from attribution_assets.readers.tropomi import read_tropomi_ch4

LOG = logging.getLogger(__name__)

Reader = Callable[..., xr.Dataset]
READERS: dict[str, Reader] = {
    "EMIT": read_emit_l1b,
    "TROPOMI": read_tropomi_ch4,
    "GHGSAT": read_ghgsat_l2,
    "OCO2": read_oco2_lite,
}
"""The AOI reader of each instrument."""


@dataclass
class AoiExtract:
    """One instrument's AOI: a dataset per granule (keyed by file stem), the outcome of every listed
    file (file name -> ``"read"`` or why not; ``{"-": reason}`` when no file was listed) and the AOI
    box (degrees; ``None`` when the instrument does not measure the gas)."""

    instrument: str
    datasets: dict[str, xr.Dataset] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    bbox: BBox | None = None

    @property
    def observations(self) -> int:
        """Observations (pixels or soundings along the first dimension) over every granule."""
        return sum(int(next(iter(ds.sizes.values()), 0)) for ds in self.datasets.values())


def extract_aoi(
    event: DetectionEvent,
    overpasses: gpd.GeoDataFrame,
    instrument: str,
    settings: EventSettings,
    log: logging.Logger = LOG,
) -> AoiExtract:
    """Read the AOI of every file of ``instrument`` listed in ``overpasses``; log and skip unusable ones.
    The rejected files listed (:func:`~attribution_assets.pipeline.overpasses.rejected_files`) are not
    read: their outcome is the crawl's reason."""
    if INSTRUMENT_GAS[instrument] != event.gas:
        return AoiExtract(instrument, outcomes={"-": f"{instrument} does not measure {event.gas}"})
    bbox = settings.bbox(event, settings.half_width_km(instrument))
    granules = catalogued(overpasses)
    paths = list(dict.fromkeys(granules.loc[granules["instrument"] == instrument, "path"]))
    extract = AoiExtract(instrument, bbox=bbox)
    broken = rejected_files(overpasses)
    for row in broken[broken["instrument"] == instrument].itertuples():
        name = Path(row.path).name
        extract.outcomes[name if name not in extract.outcomes else str(row.path)] = (
            f"rejected by the catalog crawl: {rejection_text(row)}"
        )
    for path in paths:
        name = Path(path).name
        try:
            extract.datasets[Path(path).stem] = READERS[instrument](path, bbox=bbox)
            extract.outcomes[name] = "read"
        except EmptyAOIError as error:
            extract.outcomes[name] = f"no data in AOI ({error.reason or 'outside footprint'})"
            log.info(f"{instrument}: {error}")
        except (ProductFormatError, OSError) as error:
            extract.outcomes[name] = f"rejected: {error}"
            log.error(f"{instrument}: skipping unreadable granule: {error}")
    if not extract.outcomes:
        log.info(f"{instrument}: no overpass for {event.key}")
        extract.outcomes = {"-": "no overpass"}
    return extract


def extract_aois(
    event: DetectionEvent, overpasses: gpd.GeoDataFrame, settings: EventSettings, log: logging.Logger = LOG
) -> dict[str, AoiExtract]:
    """:func:`extract_aoi` of every instrument, keyed by instrument."""
    return {name: extract_aoi(event, overpasses, name, settings, log) for name in INSTRUMENTS}
