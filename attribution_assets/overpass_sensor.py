"""The new-overpass sensor: new or changed product files in the archive (and, with Earthdata
credentials and a watch list, new granules over the watched areas) become catalog rows, detection
scans, new event partitions and runs. The logic is in :mod:`attribution_assets.pipeline.new_overpasses`.
"""

from __future__ import annotations

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from attribution_assets.jobs import attribute_event_job, catalog_job
from attribution_assets.orchestration.submit import IN_FLIGHT
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.new_overpasses import LEDGER_DIR, CrawlRuns, OverpassSettings, plan_tick
from attribution_assets.resources import AnalysisSettings, EarthdataResource, OutputStore, ProductArchive


def crawl_runs(instance: DagsterInstance) -> CrawlRuns:
    """The state of the ``crawl_catalog`` runs on ``instance`` (newest first)."""
    job = catalog_job.name
    in_flight = bool(instance.get_runs(filters=RunsFilter(job_name=job, statuses=IN_FLIGHT), limit=1))
    done = instance.get_run_records(
        filters=RunsFilter(job_name=job, statuses=[DagsterRunStatus.SUCCESS]), limit=1
    )
    start = done[0].start_time if done else None
    latest = instance.get_runs(filters=RunsFilter(job_name=job), limit=1)
    failed = latest and latest[0].status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    return CrawlRuns(
        in_flight=in_flight,
        last_success_start_ns=None if start is None else int(start * 1e9),
        failed_run_id=latest[0].run_id if failed else None,
    )


@sensor(
    jobs=[attribute_event_job, catalog_job],
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.STOPPED,
    description="Catalogues new or changed product files of the archive (and, with Earthdata credentials "
    "and ATTRIBUTION_WATCH_LIST, downloads new granules over the watched areas first), scans the new "
    "EMIT, TROPOMI and OCO-2 granules for detections, registers the new events as partitions and runs "
    "them, and re-runs registered events whose window and AOI a new granule covers. Run keys carry the "
    "inputs' fingerprints. At most ATTRIBUTION_OVERPASS_BATCH files (default 200) per tick; a large "
    "uncatalogued backlog is catalogued by one crawl_catalog run first.",
)
def new_overpass_sensor(
    context: SensorEvaluationContext,
    archive: ProductArchive,
    store: OutputStore,
    settings: AnalysisSettings,
    earthdata: EarthdataResource,
) -> SensorResult | SkipReason:
    if not archive.path.is_dir():
        return SkipReason(f"archive {archive.path} does not exist")
    plan = plan_tick(
        archive.path,
        store.catalog_files,
        store.event_registry_path,
        store.path / LEDGER_DIR,
        context.cursor,
        OverpassSettings.from_env(),
        settings.event_settings(),
        crawl_runs(context.instance),
        earthdata=earthdata,
        log=context.log,
    )
    for message in plan.messages:
        context.log.info(message)
    context.log.info(plan.summary())
    keys = [run.event_key for run in plan.runs]
    missing = [k for k in keys if not context.instance.has_dynamic_partition(detection_events.name, k)]
    requests = [
        RunRequest(
            run_key=run.run_key,
            partition_key=run.event_key,
            job_name=attribute_event_job.name,
            tags={"attribution/reason": run.reason, "attribution/granules": ",".join(run.granules)[:1000]},
        )
        for run in plan.runs
    ]
    if plan.crawl_key:
        requests.append(RunRequest(run_key=plan.crawl_key, job_name=catalog_job.name))
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[detection_events.build_add_request(missing)] if missing else [],
        skip_reason=None if requests else plan.summary(),
        cursor=plan.cursor,
    )
