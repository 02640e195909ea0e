"""The alert-delivery sensor: alerts follow posteriors, and failed webhook deliveries are resent, without
a person.

Each tick:

1. **New posteriors.** Every ``event_posterior`` materialisation after the cursor (the newest one when the
   sensor is first switched on) puts its event's ISO week in the cursor's ``waiting`` list, with the
   posterior's event-log id and time. A waiting week leaves the list once the week's ``alerts`` were
   materialised by a run that started after its newest posterior (by this sensor, a backfill, the CLI or
   the UI). Until then, while no run of the week's partition is queued, running or being cancelled and
   no unfinished backfill targets the week's alerts (it rolls the week up after its events), a
   ``weekly_rollup`` run is requested with the roll-ups' queue priority.
2. **Failed deliveries.** The weeks' delivery ledgers are read
   (:func:`~attribution_assets.alerting.retries.pending_resends`), and a run of a week's ``alerts``
   alone is requested once one of its pending deliveries is due. An unreadable ledger or delivery
   record is logged as an error when first met (the cursor's ``reported`` list), not again each
   minute, and counted in the skip reason of every tick that requests nothing while it lasts.

A requested run that fails or is cancelled is requested again at the next tick, up to
:data:`MAX_RUN_FAILURES` runs for the same posterior or failed round; then the sensor logs an error
naming the week and stops asking until something new happens (another posterior of the week, another
failed round). Run keys carry the attempt, so no request is silently dropped as a duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.storage.tags import PARTITION_NAME_TAG, PRIORITY_TAG

from attribution_assets.alerting.resource import NotifierResource
from attribution_assets.alerting.retries import PendingResend, pending_resends
from attribution_assets.assets.alerts import ledger_dir
from attribution_assets.events import is_event_key, parse_event_key
from attribution_assets.jobs import ROLLUP_PRIORITY, rollup_job
from attribution_assets.orchestration.submit import IN_FLIGHT
from attribution_assets.partitions import partition_of_week, weekly_partitions
from attribution_assets.resources import OutputStore
from attribution_assets.times import iso_z

POSTERIOR = AssetKey("event_posterior")
ALERTS = AssetKey("alerts")
RECORDS_PER_FETCH = 1000
"""``event_posterior`` materialisations read per query of the event log."""
MAX_RUN_FAILURES = 3
"""Failed or cancelled runs the sensor requests for one new posterior (or one failed delivery round)
before it gives up on it."""
TRIGGER_TAG = "attribution/trigger"
ROLLUP_FOR_TAG = "attribution/rollup_for"
"""Tag of a sensor-requested roll-up: ``<Monday>:<newest posterior's event-log id>``."""
RESEND_FOR_TAG = "attribution/resend_for"
"""Tag of a sensor-requested resend: ``<Monday>:<newest failure time>``."""
ENDED_BADLY = [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]

Waiting = dict[str, tuple[int, float]]
"""Week partition (Monday) -> (event-log id, time in s since the epoch) of its newest posterior."""


def week_run_in_flight(instance: DagsterInstance, monday: str) -> bool:
    """Whether any run of the week partition ``monday`` (a roll-up, an ``alerts`` materialisation from
    the UI or a backfill) is queued or running."""
    return bool(instance.get_run_ids(RunsFilter(statuses=IN_FLIGHT, tags={PARTITION_NAME_TAG: monday}),
                                     limit=1))


def week_backfill_in_progress(instance: DagsterInstance, monday: str) -> bool:
    """Whether a backfill that has not ended targets the week partition ``monday``: an asset backfill
    whose targets hold the week's ``alerts`` (it rolls the week up after its events), or a job backfill
    over that partition."""
    active = BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING])
    for backfill in instance.get_backfills(filters=active):
        data = backfill.asset_backfill_data
        if data is None:
            if monday in (backfill.partition_names or []):
                return True
            continue
        subset = data.target_subset.partitions_subsets_by_asset_key.get(ALERTS)
        if subset is not None and monday in subset.get_partition_keys():
            return True
    return False


def alerts_rolled_up_since(instance: DagsterInstance, monday: str, timestamp: float) -> bool:
    """Whether the newest materialisation of the week's ``alerts`` comes from a run that started at or
    after ``timestamp`` (s since the epoch), and so read every posterior written before it."""
    latest = instance.fetch_materializations(AssetRecordsFilter(ALERTS, asset_partitions=[monday]),
                                             limit=1).records
    if not latest:
        return False
    run = instance.get_run_record_by_id(latest[0].run_id)
    return run is not None and run.start_time is not None and run.start_time >= timestamp


def failed_runs(instance: DagsterInstance, tag: str, value: str) -> int:
    """Failed or cancelled runs tagged ``tag=value``."""
    return len(instance.get_run_ids(RunsFilter(tags={tag: value}, statuses=ENDED_BADLY)))


def weeks_of_new_posteriors(instance: DagsterInstance, after: int) -> tuple[Waiting, int]:
    """The week partitions of the events whose ``event_posterior`` was materialised after event-log id
    ``after``, each with its newest such posterior, and the newest id read (``after`` if none)."""
    weeks: Waiting = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(AssetRecordsFilter(POSTERIOR, after_storage_id=after),
                                               limit=RECORDS_PER_FETCH, cursor=cursor, ascending=True)
        for record in page.records:
            key = record.partition_key
            if key and is_event_key(key):
                monday = partition_of_week(parse_event_key(key).iso_week)
                weeks[monday] = (record.storage_id, record.timestamp)
        if page.records:
            after = max(after, page.records[-1].storage_id)
        if not page.has_more:
            return weeks, after
        cursor = page.cursor


def latest_posterior_id(instance: DagsterInstance) -> int:
    """The event-log id of the newest ``event_posterior`` materialisation (0 when there is none)."""
    latest = instance.fetch_materializations(POSTERIOR, limit=1).records
    return latest[0].storage_id if latest else 0


def week_request(monday: str, tag: str, subject: str, attempt: int, trigger: str,
                 assets: list[AssetKey] | None = None) -> RunRequest:
    """A run request of the week partition ``monday`` for ``subject`` (the value of ``tag``); the run key
    is ``<kind>:<subject>:<attempt>``."""
    kind = "rollup" if tag == ROLLUP_FOR_TAG else "resend"
    return RunRequest(
        run_key=f"{kind}:{subject}:{attempt}",
        partition_key=monday,
        asset_selection=assets,
        tags={PRIORITY_TAG: str(ROLLUP_PRIORITY), TRIGGER_TAG: trigger, tag: subject},
    )


def due_by_week(resends: Iterable[PendingResend], now: datetime) -> dict[str, list[PendingResend]]:
    """The resends due at ``now`` by week partition (Monday)."""
    weeks: dict[str, list[PendingResend]] = {}
    for resend in resends:
        if resend.due_at <= now:
            weeks.setdefault(partition_of_week(resend.week), []).append(resend)
    return weeks


@sensor(
    job=rollup_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Alerts without a person: rolls up the week of every new event posterior (its alerts go "
    "out within minutes, not at Monday's roll-up) unless a run that started after it already did, and "
    "resends the week's failed webhook deliveries once their backoff has passed "
    "(ATTRIBUTION_RESEND_AFTER_S, 300 s, doubled per failed round up to ATTRIBUTION_RESEND_MAX_S, 6 h; only "
    "failures that may pass on their own: no response, 5xx, 429). A week waits while a run of it is queued "
    "or running or a backfill of it is unfinished; a requested run that fails is requested again, at most "
    f"{MAX_RUN_FAILURES} times.",
)
def alert_delivery_sensor(
    context: SensorEvaluationContext, store: OutputStore, notifier: NotifierResource
) -> SensorResult:
    instance, now = context.instance, datetime.now(UTC)
    state = json.loads(context.cursor) if context.cursor else {"after": latest_posterior_id(instance)}
    waiting: Waiting = {monday: (int(i), float(t)) for monday, (i, t) in state.get("waiting", {}).items()}
    given_up = set(state.get("given_up", []))
    new_weeks, after = weeks_of_new_posteriors(instance, int(state["after"]))
    waiting.update(new_weeks)

    requests: list[RunRequest] = []
    for monday, (posterior_id, timestamp) in sorted(waiting.items()):
        subject = f"{monday}:{posterior_id}"
        if not weekly_partitions.has_partition_key(monday):
            context.log.warning(f"posterior of week {monday}: outside the week partitions "
                                f"(from {weekly_partitions.start:%Y-%m-%d}); not rolled up")
        elif alerts_rolled_up_since(instance, monday, timestamp):
            pass
        elif week_run_in_flight(instance, monday) or week_backfill_in_progress(instance, monday):
            continue
        elif (failures := failed_runs(instance, ROLLUP_FOR_TAG, subject)) >= MAX_RUN_FAILURES:
            context.log.error(f"week {monday}: {failures} roll-up runs for its new posteriors failed; not "
                              "requested again until another posterior of the week is materialised "
                              "(re-execute the failed run or materialise the week's alerts from the UI)")
        else:
            requests.append(week_request(monday, ROLLUP_FOR_TAG, subject, failures, "new posterior"))
            continue
        del waiting[monday]

    resends, problems = pending_resends(ledger_dir(store), notifier.webhook_ids(), notifier.resend_backoff())
    unreadable = sorted(set(problems))
    reported = set(state.get("reported", []))
    for problem in unreadable:
        if problem not in reported:
            context.log.error(problem)  # once while it lasts; the skip reason counts it on every tick
    requested = {request.partition_key for request in requests}
    due_subjects = set()
    for monday, due in sorted(due_by_week(resends, now).items()):
        subject = f"{monday}:{iso_z(max(resend.failed_at for resend in due))}"
        due_subjects.add(subject)
        if not weekly_partitions.has_partition_key(monday):
            context.log.warning(f"failed deliveries of week {monday}: outside the week partitions; "
                                "not resent")
        elif monday in requested or week_run_in_flight(instance, monday):
            continue
        elif (failures := failed_runs(instance, RESEND_FOR_TAG, subject)) >= MAX_RUN_FAILURES:
            if subject not in given_up:
                context.log.error(f"week {monday}: {failures} runs resending its failed deliveries failed; "
                                  "not requested again until a delivery fails anew (re-execute the failed "
                                  "run or materialise the week's alerts from the UI)")
                given_up.add(subject)
        else:
            requests.append(week_request(monday, RESEND_FOR_TAG, subject, failures, "failed delivery",
                                         [ALERTS]))

    cursor = json.dumps({"after": after, "waiting": waiting, "given_up": sorted(given_up & due_subjects),
                         "reported": unreadable})
    skip = None
    if not requests:
        next_due = min((resend.due_at for resend in resends if resend.due_at > now), default=None)
        skip = (f"no run to request: {len(resends)} failed delivery(ies) pending"
                f"{f' (next resend due {iso_z(next_due)})' if next_due else ''}, {len(waiting)} week(s) "
                f"waiting for a run or backfill of theirs to end, {len(given_up & due_subjects)} resend(s) "
                "given up" + (f", {len(unreadable)} unreadable delivery record(s) (in the sensor's log "
                              "when first met)" if unreadable else ""))
    return SensorResult(run_requests=requests, skip_reason=skip, cursor=cursor)
