"""Jobs: the catalog crawl, the whole per-event graph, and the weekly roll-up (partitioned by ISO week)."""

from dagster import AssetSelection, OpExecutionContext, define_asset_job, job, op

from attribution_assets.assets.alerts import alerts
from attribution_assets.assets.catalog import overpass_catalog
from attribution_assets.assets.detections import detections
from attribution_assets.assets.weekly import weekly_posteriors
from attribution_assets.partitions import week_of_partition, weekly_partitions
from attribution_assets.resources import AnalysisSettings, OutputStore, ProductArchive

catalog_job = define_asset_job(
    "crawl_catalog",
    selection=AssetSelection.assets(overpass_catalog),
    description="Crawl the archive into the overpass catalog (incremental).",
)
GLOBAL_ASSETS = AssetSelection.assets(overpass_catalog, weekly_posteriors, alerts, detections)
EVENT_ASSETS = AssetSelection.all() - GLOBAL_ASSETS
"""Every asset partitioned by detection event."""

QUEUE_TAG = "attribution/queue"
COMPUTE_RUN_TAGS = {QUEUE_TAG: "compute"}
"""Tags of the runs that keep a core busy for their whole length: event runs (every run of the
``attribute_event`` job, however it is launched, and every run of a week backfill) and detection scans
(``scan_detections``). The instance's queue runs at most two of them at once (``dagster.yaml``) below
its limit of three runs, so a roll-up or a crawl, which read and write files and sample nothing, starts
beside two of them instead of waiting for one to end. Given as the jobs' ``tags``, which Dagster also puts on
every run of the job (the UI's launches copy a job's tags, not its separate ``run_tags``)."""
attribute_event_job = define_asset_job(
    "attribute_event",
    selection=EVENT_ASSETS,
    description="Every per-event stage, from the catalog query to the GeoParquet posterior row.",
    tags=COMPUTE_RUN_TAGS,
)
detection_job = define_asset_job(
    "scan_detections",
    selection=AssetSelection.assets(overpass_catalog, detections),
    description="Crawl, then scan every TROPOMI and OCO-2 granule for plumes; events go to the alert inbox.",
    tags=COMPUTE_RUN_TAGS,
)
WEEK_ASSETS = AssetSelection.assets(weekly_posteriors, alerts)
"""The roll-up of a week and what follows from it (the week's alert list)."""
ROLLUP_PRIORITY = 1
"""Queue priority (``dagster/priority``) of the roll-up runs the CLI and the alert sensor submit; event
runs have 0, so a finished week's alerts do not wait behind a queue of event runs."""
rollup_job = define_asset_job(
    "weekly_rollup",
    selection=WEEK_ASSETS,
    description="Rebuild one ISO week's posterior roll-up (partition = the week's Monday) and its alerts.",
)


@op(description="Add to the instance the backfill of this ISO week: every registered event of the week, "
    "then the week's roll-up and alerts (the daemon runs it; see the Backfills page).")
def launch_week_backfill_op(
    context: OpExecutionContext, archive: ProductArchive, store: OutputStore, settings: AnalysisSettings
) -> None:
    """Launch the week backfill of this run's partition with this run's archive, output root and every
    analysis setting (run config for a resource replaces its configuration, so the backfill's runs get
    all of them, not the defaults of those left out); the run gets the backfill's id as tag
    ``attribution/backfill``."""
    from attribution_assets.definitions import defs
    from attribution_assets.orchestration.backfill import launch_week_backfill
    from attribution_assets.orchestration.config import resources_config

    week = week_of_partition(context.partition_key)
    config = resources_config(archive.root, store.root, settings.config_values())
    backfill = launch_week_backfill(context.instance, defs.resolve_asset_graph(), week, config)
    context.instance.add_run_tags(context.run_id, {"attribution/backfill": backfill.backfill_id})
    context.log.info(f"backfill {backfill.backfill_id} of {week} added: {backfill.title}")


@job(
    name="backfill_week",
    partitions_def=weekly_partitions,
    description="Launch pad of a week backfill: pick a week (its Monday) and launch; the run adds ONE asset "
    "backfill of the week's events and roll-up, which then shows on the Backfills page.",
)
def backfill_week_job() -> None:
    launch_week_backfill_op()
