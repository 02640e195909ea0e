"""Sensors and schedules: operator alert files become event partitions and runs; weekly roll-ups. (The
alert-delivery sensor is in :mod:`attribution_assets.delivery_sensor`, the new-overpass sensor in
:mod:`attribution_assets.overpass_sensor`.)"""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)

from attribution_assets.atomic import atomic_path
from attribution_assets.events import AlertFormatError, DetectionEvent, read_alerts, record_events
from attribution_assets.jobs import attribute_event_job, rollup_job
from attribution_assets.partitions import detection_events
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

