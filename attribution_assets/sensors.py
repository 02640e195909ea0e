"""Sensors and schedules: operator alert files become event partitions and runs; weekly roll-ups."""

import json
import os
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from attribution_assets.events import AlertFormatError, read_alerts
from attribution_assets.jobs import attribute_event_job, rollup_job
from attribution_assets.partitions import detection_events
from attribution_assets.paths import output_root

ALERT_SUFFIXES = (".csv", ".geojson", ".json")


def alert_inbox() -> Path:
    """``ATTRIBUTION_ALERTS_INBOX`` or ``OUTPUT/alerts_inbox``: drop operator alert files here."""
    return Path(os.environ.get("ATTRIBUTION_ALERTS_INBOX") or output_root() / "alerts_inbox")


@sensor(
    job=attribute_event_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Registers the events of new or changed alert files in the alert inbox and requests a "
    "run of the whole event graph for each new event.",
)
def alert_inbox_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
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
    keys: list[str] = []
    for path in changed:
        try:
            keys.extend(event.key for event in read_alerts(path))
        except AlertFormatError as error:
            context.log.error(str(error))
        seen[path.name] = path.stat().st_mtime_ns
    new = [
        k for k in dict.fromkeys(keys) if not context.instance.has_dynamic_partition(detection_events.name, k)
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
