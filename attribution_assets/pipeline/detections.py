"""Detection scans of single granules: TROPOMI hotspots, OCO-2 along-track peaks and EMIT CH4 plumes
(matched filter + plume-template detection rule), each turned into detection events.

One function per granule (:func:`scan_granule`) and one over a catalog (:func:`scan_catalog`), so the
``detections`` asset (every catalogued granule) and the new-overpass sensor (only the new granules)
run the same code. No Dagster here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import xarray as xr

from attribution_assets.events import DetectionEvent
from attribution_assets.pipeline.settings import INSTRUMENT_GAS
from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.errors import EmptyAOIError
from attribution_assets.readers.oco2 import read_oco2_lite
from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.readers.tropomi import read_tropomi_ch4
from attribution_assets.science.detection.candidates import detections_to_events
from attribution_assets.science.detection.hotspots import scan_tropomi_hotspots
from attribution_assets.science.detection.matched_filter import CH4_WINDOW_NM
from attribution_assets.science.detection.peaks import scan_oco2_peaks
from attribution_assets.science.detection.plume_scan import scan_emit_plumes
from attribution_assets.times import iso_z

LOG = logging.getLogger(__name__)

Reader = Callable[[str | Path], xr.Dataset]
Scan = Callable[[xr.Dataset], pd.DataFrame]

SCANS: dict[str, tuple[Reader, Scan]] = {
    "TROPOMI": (read_tropomi_ch4, lambda ds: scan_tropomi_hotspots(ds).candidates),
    "OCO2": (read_oco2_lite, lambda ds: scan_oco2_peaks(ds).peaks),
    "EMIT": (
        partial(read_emit_l1b, window_nm=CH4_WINDOW_NM),
        lambda ds: scan_emit_plumes(ds, load_ch4_unit_absorption()),
    ),
}
"""Instrument -> (reader of a whole granule, scan returning a candidate table with ``longitude``,
``latitude`` in degrees, ``time`` UTC and optional ``significance``)."""

SCAN_ERRORS = (EmptyAOIError, OSError, ValueError, KeyError, RuntimeError)
"""What reading or scanning a broken or empty granule raises (``ProductFormatError`` is a ValueError)."""


@dataclass(frozen=True)
class GranuleScan:
    """The scan of one granule file: its events, how many raw candidates, and a one-line outcome."""

    path: str
    instrument: str
    events: list[DetectionEvent] = field(default_factory=list)
    n_candidates: int = 0
    error: str | None = None

    @property
    def outcome(self) -> str:
        """``"3 candidates, 1 events"`` or ``"skipped: <reason>"``."""
        if self.error is not None:
            return f"skipped: {self.error}"
        return f"{self.n_candidates} candidates, {len(self.events)} events"


def is_scanned(instrument: str) -> bool:
    """Whether granules of ``instrument`` are scanned for detections (EMIT, TROPOMI, OCO-2)."""
    return instrument in SCANS


def scan_granule(path: str | Path, instrument: str, log: logging.Logger = LOG) -> GranuleScan:
    """Read the granule file at ``path`` whole and scan it; candidates become detection events of the
    instrument's gas (merged within 10 km and 12 h, :func:`detections_to_events`).

    A granule the reader or the scan rejects (broken file, no valid pixel) is a normal outcome: the
    result carries the error (naming the file) and no event; it is logged as a warning.
    """
    reader, scan = SCANS[instrument]
    try:
        candidates = scan(reader(path))
        events = detections_to_events(candidates, INSTRUMENT_GAS[instrument]) if len(candidates) else []
    except SCAN_ERRORS as error:
        log.warning(f"{instrument}: {error}")
        return GranuleScan(str(path), instrument, error=str(error) or type(error).__name__)
    return GranuleScan(str(path), instrument, events, len(candidates))


@dataclass
class CatalogScan:
    """Scans of many granules: the events (in scan order, one per key), the file name each event was
    first detected in, and every file's outcome by file name."""

    events: list[DetectionEvent] = field(default_factory=list)
    source: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)

    def add(self, scan: GranuleScan) -> None:
        """Add one granule's scan (an event key already found keeps its first granule)."""
        name = Path(scan.path).name
        self.outcomes[name] = scan.outcome
        for event in scan.events:
            if event.key not in self.source:
                self.source[event.key] = name
                self.events.append(event)


def scan_paths(
    paths: Iterable[tuple[str, str]], log: logging.Logger = LOG
) -> CatalogScan:
    """Scan every ``(instrument, path)`` whose instrument has a scan, each file once."""
    result = CatalogScan()
    for instrument, path in dict.fromkeys(paths):
        if is_scanned(instrument):
            result.add(scan_granule(path, instrument, log))
    return result


def scan_catalog(catalog: pd.DataFrame, log: logging.Logger = LOG) -> CatalogScan:
    """Scan every catalogued granule file of the scanned instruments (TROPOMI, OCO-2, EMIT, in that
    order), each file once (an OCO-2 file holds many along-track rows)."""
    pairs = [
        (instrument, path)
        for instrument in SCANS
        for path in catalog.loc[catalog["instrument"] == instrument, "path"]
    ]
    return scan_paths(pairs, log)


def events_table(events: list[DetectionEvent], source: dict[str, str]) -> pd.DataFrame:
    """Events in the operator alert format (``event_id`` = key), with the granule that produced each."""
    return pd.DataFrame(
        {
            "event_id": [e.key for e in events],
            "event_time": [iso_z(e.time) for e in events],
            "latitude": [e.latitude for e in events],
            "longitude": [e.longitude for e in events],
            "gas": [e.gas for e in events],
            "detected_in": [source[e.key] for e in events],
        },
        columns=["event_id", "event_time", "latitude", "longitude", "gas", "detected_in"],
    )
