"""Detection scans over the catalogued archive: TROPOMI hotspots, OCO-2 along-track peaks and EMIT
CH4 plumes (matched filter + plume-template detection rule).

The scan results become detection events, written as an operator alert file into the alert inbox,
so the alert sensor registers and runs them exactly like an operator's alerts.
"""

from functools import partial
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from attribution_assets.assets.catalog import overpass_catalog
from attribution_assets.catalog.store import read_geoparquet
from attribution_assets.csv_safety import write_safe_csv
from attribution_assets.events import DetectionEvent
from attribution_assets.paths import alert_inbox
from attribution_assets.pipeline.settings import INSTRUMENT_GAS
from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.errors import EmptyAOIError
from attribution_assets.readers.oco2 import read_oco2_lite
from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.readers.tropomi import read_tropomi_ch4
from attribution_assets.resources import OutputStore
from attribution_assets.science.detection.candidates import detections_to_events
from attribution_assets.science.detection.hotspots import scan_tropomi_hotspots
from attribution_assets.science.detection.matched_filter import CH4_WINDOW_NM
from attribution_assets.science.detection.peaks import scan_oco2_peaks
from attribution_assets.science.detection.plume_scan import scan_emit_plumes
from attribution_assets.times import iso_z

SCANS = {
    "TROPOMI": (read_tropomi_ch4, lambda ds: scan_tropomi_hotspots(ds).candidates),
    "OCO2": (read_oco2_lite, lambda ds: scan_oco2_peaks(ds).peaks),
    "EMIT": (
        partial(read_emit_l1b, window_nm=CH4_WINDOW_NM),
        lambda ds: scan_emit_plumes(ds, load_ch4_unit_absorption()),
    ),
}


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
        }
    )


@asset(
    deps=[overpass_catalog],
    group_name="detection",
    description="TROPOMI hotspot, OCO-2 peak and EMIT plume scans of every catalogued granule, merged "
    "into detection events and dropped into the alert inbox for the alert sensor.",
)
def detections(context: AssetExecutionContext, store: OutputStore) -> MaterializeResult:
    catalog = read_geoparquet(store.catalog_path)
    events: list[DetectionEvent] = []
    source: dict[str, str] = {}
    outcomes: dict[str, str] = {}
    for instrument, (reader, scan) in SCANS.items():
        for path in dict.fromkeys(catalog.loc[catalog["instrument"] == instrument, "path"]):
            name = Path(path).name
            try:
                candidates = scan(reader(path))
            except (EmptyAOIError, OSError, ValueError) as error:
                outcomes[name] = f"skipped: {error}"
                context.log.warning(f"{instrument}: {error}")
                continue
            found = detections_to_events(candidates, INSTRUMENT_GAS[instrument]) if len(candidates) else []
            outcomes[name] = f"{len(candidates)} candidates, {len(found)} events"
            for event in found:
                source[event.key] = name
            events += found
    table = events_table(events, source)
    target = alert_inbox() / "detections.csv"
    if len(table):  # an alert file without rows is a format error: the sensor would reject it
        write_safe_csv(table, target)
    return MaterializeResult(
        metadata={
            "events": len(table),
            "alert_file": MetadataValue.path(str(target)),
            "granules": MetadataValue.json(outcomes),
            "table": MetadataValue.md(table.to_markdown(index=False) if len(table) else "no detection"),
        }
    )
