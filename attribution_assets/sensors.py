"""Sensors and schedules: operator alert files become event partitions and runs; weekly roll-ups."""

import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from attribution_assets.events import AlertFormatError, DetectionEvent, read_alerts, record_events
from attribution_assets.jobs import attribute_event_job, rollup_job
from attribution_assets.partitions import detection_events
from attribution_assets.paths import alert_inbox
from attribution_assets.resources import OutputStore

ALERT_SUFFIXES = (".csv", ".geojson", ".json")


@sensor(
    job=attribute_event_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Registers the events of new or changed alert files in the alert inbox and requests a "
    "run of the whole event graph for each new event.",
)
def alert_inbox_sensor(context: SensorEvaluationContext, store: OutputStore) -> SensorResult | SkipReason:
    inbox = alert_inbox()
    if not inbox.is_dir():
        return SkipReason(f"alert inbox {inbox} does not exist")
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    changed = [
        p
        for p in sorted(inbox.iterdir())
        if p.suffix.lower() in ALERT_SUFFIXES and seen.get(p.name) != p.stat().st_mtime_ns
    ]
    if not changed:
        return SkipReason("no new alert files")
    events: list[DetectionEvent] = []
    for path in changed:
        try:
            events.extend(read_alerts(path))
        except AlertFormatError as error:
            context.log.error(str(error))
        seen[path.name] = path.stat().st_mtime_ns
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
        cursor=json.dumps(seen),
    )


weekly_rollup_schedule = ScheduleDefinition(
    job=rollup_job,
    cron_schedule="0 6 * * 1",
    execution_timezone="UTC",
    description="Monday 06:00 UTC: rebuild the weekly posterior roll-ups and the alert lists.",
)
