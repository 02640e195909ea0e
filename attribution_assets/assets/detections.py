"""Detection scans over the catalogued archive: TROPOMI hotspots, OCO-2 along-track peaks and EMIT
CH4 plumes (matched filter + plume-template detection rule), by :mod:`attribution_assets.pipeline.detections`.

The scan results become detection events, written as an operator alert file into the alert inbox,
so the alert sensor registers and runs them exactly like an operator's alerts. The new-overpass
sensor runs the same per-granule scans on new granules only.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from attribution_assets.assets.catalog import overpass_catalog
from attribution_assets.catalog.store import read_geoparquet
from attribution_assets.csv_safety import write_safe_csv
from attribution_assets.paths import alert_inbox
from attribution_assets.pipeline.detections import events_table, scan_catalog
from attribution_assets.resources import OutputStore


@asset(
    deps=[overpass_catalog],
    group_name="detection",
    description="TROPOMI hotspot, OCO-2 peak and EMIT plume scans of every catalogued granule, merged "
    "into detection events and dropped into the alert inbox for the alert sensor.",
)
def detections(context: AssetExecutionContext, store: OutputStore) -> MaterializeResult:
    scans = scan_catalog(read_geoparquet(store.catalog_path), context.log)
    table = events_table(scans.events, scans.source)
    target = alert_inbox() / "detections.csv"
    if len(table):  # an alert file without rows is a format error: the sensor would reject it
        write_safe_csv(table, target)
    return MaterializeResult(
        metadata={
            "events": len(table),
            "alert_file": MetadataValue.path(str(target)),
            "granules": MetadataValue.json(scans.outcomes),
            "table": MetadataValue.md(table.to_markdown(index=False) if len(table) else "no detection"),
        }
    )
