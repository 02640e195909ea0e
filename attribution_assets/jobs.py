"""Jobs: the catalog crawl, the whole per-event graph, and the weekly roll-ups."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from attribution_assets.assets.alerts import alerts
from attribution_assets.assets.catalog import overpass_catalog
from attribution_assets.assets.detections import detections
from attribution_assets.assets.weekly import weekly_posteriors

catalog_job = define_asset_job(
    "crawl_catalog",
    selection=AssetSelection.assets(overpass_catalog),
    description="Crawl the archive into the overpass catalog (incremental).",
)
GLOBAL_ASSETS = AssetSelection.assets(overpass_catalog, weekly_posteriors, alerts, detections)
EVENT_ASSETS = AssetSelection.all() - GLOBAL_ASSETS
"""Every asset partitioned by detection event."""

attribute_event_job = define_asset_job(
    "attribute_event",
    selection=EVENT_ASSETS,
    description="Every per-event stage, from the catalog query to the GeoParquet posterior row.",
)
detection_job = define_asset_job(
    "scan_detections",
    selection=AssetSelection.assets(overpass_catalog, detections),
    description="Crawl, then scan every TROPOMI and OCO-2 granule for plumes; events go to the alert inbox.",
)
rollup_job = define_asset_job(
    "weekly_rollup",
    selection=AssetSelection.assets(weekly_posteriors, alerts),
    description="Rebuild stale weekly roll-ups and alert lists.",
)
