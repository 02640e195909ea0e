"""Sensors and schedules: operator alert files become event partitions and runs; new posteriors and
failed webhook deliveries become roll-up runs of their week; the weekly roll-up schedule."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)
from dagster._core.storage.tags import PARTITION_NAME_TAG, PRIORITY_TAG

from attribution_assets.alerting.resource import NotifierResource
from attribution_assets.alerting.retries import DueDelivery, due_deliveries
from attribution_assets.assets.alerts import ledger_dir
from attribution_assets.atomic import atomic_path
from attribution_assets.events import (
    AlertFormatError,
    DetectionEvent,
    is_event_key,
    parse_event_key,
    read_alerts,
    record_events,
)
from attribution_assets.jobs import ROLLUP_PRIORITY, attribute_event_job, rollup_job
from attribution_assets.orchestration.submit import IN_FLIGHT
from attribution_assets.partitions import detection_events, partition_of_week, weekly_partitions
from attribution_assets.paths import alert_inbox
from attribution_assets.resources import OutputStore
from attribution_assets.times import iso_z

ALERT_SUFFIXES = (".csv", ".geojson", ".json")
REJECTED_DIR = "rejected"
"""Folder inside the alert inbox that bad alert files are moved to, each with ``<name>.reason.txt``."""


def alert_files(inbox: Path) -> dict[str, int]:
    """Alert files in ``inbox`` (not hidden, not in sub-folders) by name, with their mtime (ns)."""
    files = {}
    for path in sorted(inbox.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in ALERT_SUFFIXES:
            continue
        try:
            if path.is_file():
                files[path.name] = path.stat().st_mtime_ns
        except OSError:
            continue  # removed while listing
    return files


def reject_alert_file(path: Path, reason: str) -> Path:
    """Move a bad alert file to ``rejected/`` beside it, with ``<name>.reason.txt`` saying why.

    A name already in ``rejected/`` gets a UTC time stamp, so no earlier rejection is overwritten.
    Returns the new path of the file.
    """
    folder = path.parent / REJECTED_DIR
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    path.replace(target)
    with atomic_path(target.with_name(target.name + ".reason.txt")) as tmp:
        tmp.write_text(
            f"{iso_z(datetime.now(UTC))} rejected {path.name}\n{reason}\n",
            encoding="utf-8",
            errors="backslashreplace",
        )
    return target


@sensor(
    job=attribute_event_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Registers the events of new or changed alert files in the alert inbox and requests a "
    "run of the whole event graph for each new event. A bad alert file is moved to the inbox's "
    "rejected/ folder with a .reason.txt file; the files beside it are still registered.",
)
def alert_inbox_sensor(context: SensorEvaluationContext, store: OutputStore) -> SensorResult | SkipReason:
    inbox = alert_inbox()
    if not inbox.is_dir():
        return SkipReason(f"alert inbox {inbox} does not exist")
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    present = alert_files(inbox)
    changed = [name for name, mtime in present.items() if seen.get(name) != mtime]
    if not changed:
        return SkipReason("no new alert files")
    events: list[DetectionEvent] = []
    rejected = []
    for name in changed:
        try:
            events.extend(read_alerts(inbox / name))
        except AlertFormatError as error:
            rejected.append(name)
            try:
                moved = reject_alert_file(inbox / name, str(error))
            except OSError as move_error:  # left in place; the cursor skips it until it changes
                context.log.error(f"{error} (could not move it to {REJECTED_DIR}/: {move_error})")
                continue
            context.log.error(f"{error} (moved to {moved})")
            present.pop(name)
    if events:
        record_events(store.event_registry_path, events)
    new = [
        k
        for k in dict.fromkeys(e.key for e in events)
        if not context.instance.has_dynamic_partition(detection_events.name, k)
    ]
    return SensorResult(
        run_requests=[RunRequest(run_key=key, partition_key=key) for key in new],
        dynamic_partitions_requests=[detection_events.build_add_request(new)] if new else [],
        skip_reason=None if new else f"no new events; rejected {len(rejected)} file(s) {rejected}",
        cursor=json.dumps(present),
    )


def previous_week_partition(when: datetime) -> str:
    """The week-partition key (Monday, ``YYYY-MM-DD``) of the ISO week before the one holding ``when``."""
    day = when.astimezone(UTC).date() - timedelta(days=7)
    return (day - timedelta(days=day.weekday())).isoformat()


@schedule(
    job=rollup_job,
    cron_schedule="0 6 * * 1",
    execution_timezone="UTC",
    description="Monday 06:00 UTC: roll up the ISO week that just ended (its posterior roll-up and alerts).",
)
def weekly_rollup_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    key = previous_week_partition(context.scheduled_execution_time or datetime.now(UTC))
    return RunRequest(run_key=f"weekly_rollup:{key}", partition_key=key)


POSTERIOR = AssetKey("event_posterior")
ALERTS = AssetKey("alerts")
RECORDS_PER_FETCH = 1000
"""``event_posterior`` materialisations read per query of the event log."""


def rollup_in_flight(instance: DagsterInstance, monday: str) -> bool:
    """Whether a ``weekly_rollup`` run of the week partition ``monday`` is queued or running."""
    runs = RunsFilter(job_name=rollup_job.name, statuses=IN_FLIGHT, tags={PARTITION_NAME_TAG: monday})
    return bool(instance.get_run_ids(runs, limit=1))


def weeks_of_new_posteriors(instance: DagsterInstance, after: int) -> tuple[dict[str, int], int]:
    """The week partitions (Mondays) of the events whose ``event_posterior`` was materialised after
    event-log storage id ``after``, each with the newest such storage id, and the newest storage id
    read (``after`` when there is none)."""
    weeks: dict[str, int] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(AssetRecordsFilter(POSTERIOR, after_storage_id=after),
                                               limit=RECORDS_PER_FETCH, cursor=cursor, ascending=True)
        for record in page.records:
            key = record.partition_key
            if key and is_event_key(key):
                weeks[partition_of_week(parse_event_key(key).iso_week)] = record.storage_id
        if page.records:
            after = max(after, page.records[-1].storage_id)
        if not page.has_more:
            return weeks, after
        cursor = page.cursor


def latest_posterior_id(instance: DagsterInstance) -> int:
    """The storage id of the newest ``event_posterior`` materialisation (0 when there is none)."""
    latest = instance.fetch_materializations(POSTERIOR, limit=1).records
    return latest[0].storage_id if latest else 0


def resend_request(monday: str, due: list[DueDelivery]) -> RunRequest:
    """A run of the week's ``alerts`` alone that resends its due deliveries; its run key names the
    newest failure, so each failed round is resent once."""
    newest = max(d.failed_at for d in due)
    return RunRequest(
        run_key=f"resend:{monday}:{iso_z(newest)}",
        partition_key=monday,
        asset_selection=[ALERTS],
        tags={PRIORITY_TAG: str(ROLLUP_PRIORITY), "attribution/trigger": "failed delivery"},
    )


@sensor(
    job=rollup_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Alerts without a person: rolls up the week of every event whose posterior was "
    "materialised since the sensor was switched on (its alerts go out within minutes, not at Monday's "
    "roll-up), and resends the week's failed webhook deliveries once their backoff has passed "
    "(ATTRIBUTION_RESEND_AFTER_S, 300 s, doubled per failed round up to ATTRIBUTION_RESEND_MAX_S, 6 h; only "
    "failures that may pass on their own: no response, 5xx, 429). A week whose roll-up is queued or "
    "running waits.",
)
def alert_delivery_sensor(
    context: SensorEvaluationContext, store: OutputStore, notifier: NotifierResource
) -> SensorResult:
    instance = context.instance
    state = json.loads(context.cursor) if context.cursor else {"after": latest_posterior_id(instance)}
    waiting: dict[str, int] = dict(state.get("waiting", {}))
    new_weeks, after = weeks_of_new_posteriors(instance, int(state["after"]))
    for monday, storage_id in new_weeks.items():
        waiting[monday] = max(storage_id, waiting.get(monday, 0))

    requests: list[RunRequest] = []
    for monday, storage_id in sorted(waiting.items()):
        if not weekly_partitions.has_partition_key(monday):
            context.log.warning(f"posterior of week {monday}: outside the week partitions "
                                f"(from {weekly_partitions.start:%Y-%m-%d}); not rolled up")
            del waiting[monday]
        elif not rollup_in_flight(instance, monday):
            requests.append(RunRequest(
                run_key=f"rollup:{monday}:{storage_id}", partition_key=monday,
                tags={PRIORITY_TAG: str(ROLLUP_PRIORITY), "attribution/trigger": "new posterior"},
            ))
            del waiting[monday]

    due, problems = due_deliveries(ledger_dir(store), notifier.webhook_ids(), datetime.now(UTC),
                                   notifier.resend_backoff())
    for problem in problems:
        context.log.error(problem)
    by_week: dict[str, list[DueDelivery]] = {}
    for delivery in due:
        by_week.setdefault(partition_of_week(delivery.week), []).append(delivery)
    requested = {request.partition_key for request in requests}
    for monday, deliveries in sorted(by_week.items()):
        if not weekly_partitions.has_partition_key(monday):
            context.log.warning(f"failed deliveries of week {monday}: outside the week partitions; "
                                "not resent")
        elif monday not in requested and not rollup_in_flight(instance, monday):
            requests.append(resend_request(monday, deliveries))

    skip = None
    if not requests:
        skip = f"no new posterior; {len(due)} failed delivery(ies) due, {len(waiting)} week(s) waiting"
    return SensorResult(run_requests=requests, skip_reason=skip,
                        cursor=json.dumps({"after": after, "waiting": waiting}))
