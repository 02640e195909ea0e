"""Alerts without a person: the alert-delivery sensor rolls up the week of each new posterior, waits
while a roll-up of that week is in flight, and resends failed webhook deliveries once their backoff has
passed. Real Dagster instance and event log, real posterior files, a real webhook on 127.0.0.1 and the
``alerts`` asset materialised from the sensor's own run request. (The daemon drives this sensor from an
alert file to a delivered alert in ``test_parity.py``.)"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    SensorResult,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import PARTITION_NAME_TAG, PRIORITY_TAG, RUN_KEY_TAG

from attribution_assets.alerting.delivery import DeliveryLedger, RetryPolicy, WebhookClient, deliver_alerts
from attribution_assets.alerting.payload import alert_payload
from attribution_assets.alerting.resource import NotifierResource
from attribution_assets.assets.alerts import alerts, ledger_path
from attribution_assets.definitions import defs
from attribution_assets.delivery_sensor import MAX_RUN_FAILURES, alert_delivery_sensor
from attribution_assets.events import DetectionEvent
from attribution_assets.jobs import ROLLUP_PRIORITY, rollup_job
from attribution_assets.orchestration.backfill import launch_week_backfill
from attribution_assets.partitions import detection_events
from attribution_assets.resources import OutputStore
from attribution_assets.times import iso_z, parse_time
from attribution_assets_tests.test_alerting.helpers import (
    BELCHATOW,
    PERMIAN,
    WEEK,
    WEEK_PARTITION,
    closed_port,
    permian_row,
    webhook_server,
    write_event,
)

NEXT_WEEK_EVENT = DetectionEvent(datetime(2025, 8, 20, 9, 0, tzinfo=UTC), 54.195, 38.495, "CH4")
OLD_EVENT = DetectionEvent(datetime(2023, 5, 2, 9, 0, tzinfo=UTC), 54.195, 38.495, "CH4")


class Ticks:
    """Evaluates the sensor tick after tick, carrying the cursor as the daemon does."""

    def __init__(self, instance: DagsterInstance, store: OutputStore, notifier: NotifierResource) -> None:
        self.instance, self.store, self.notifier, self.cursor = instance, store, notifier, None

    def tick(self) -> SensorResult:
        with build_sensor_context(instance=self.instance, cursor=self.cursor,
                                  resources={"store": self.store, "notifier": self.notifier}) as context:
            result = alert_delivery_sensor(context)
        self.cursor = result.cursor
        return result


def _posterior(instance: DagsterInstance, event: DetectionEvent) -> None:
    """Record a materialisation of the event's ``event_posterior`` in the event log."""
    instance.report_runless_asset_event(AssetMaterialization("event_posterior", partition=event.key))


def _launch(instance: DagsterInstance, request: RunRequest, status: DagsterRunStatus,
            job_name: str = rollup_job.name) -> DagsterRun:
    """The run the daemon creates for ``request`` (its tags, partition and run key), in ``status``."""
    tags = {**request.tags, PARTITION_NAME_TAG: request.partition_key, RUN_KEY_TAG: request.run_key}
    return instance.add_run(DagsterRun(job_name=job_name, run_id=str(uuid.uuid4()), status=status, tags=tags))


def _requests(result: SensorResult) -> list[tuple[str, str]]:
    """(partition, run key) of each request."""
    return [(r.partition_key, r.run_key) for r in result.run_requests]


@pytest.fixture
def ticks(tmp_path):
    with instance_for_test() as instance:
        yield Ticks(instance, OutputStore(root=str(tmp_path)), NotifierResource(urls=[]))


def _materialise_alerts(instance: DagsterInstance, store: OutputStore, notifier: NotifierResource,
                        partition_key: str = WEEK_PARTITION) -> None:
    assert materialize([alerts], partition_key=partition_key, instance=instance,
                       resources={"store": store, "notifier": notifier}).success


def test_each_new_posterior_rolls_up_its_week(ticks):
    _posterior(ticks.instance, PERMIAN)  # before the sensor is first switched on: not redone
    first = ticks.tick()
    assert first.run_requests == [] and "0 failed delivery(ies) pending" in first.skip_reason.skip_message
    _posterior(ticks.instance, PERMIAN)
    _posterior(ticks.instance, BELCHATOW)  # the same ISO week
    _posterior(ticks.instance, NEXT_WEEK_EVENT)
    second = ticks.tick()
    assert [p for p, _ in _requests(second)] == [WEEK_PARTITION, "2025-08-18"]
    assert all(key.startswith("rollup:") and key.endswith(":0") for _, key in _requests(second))
    for request in second.run_requests:
        assert request.asset_selection is None  # the whole roll-up job
        assert request.tags[PRIORITY_TAG] == str(ROLLUP_PRIORITY)
        _launch(ticks.instance, request, DagsterRunStatus.STARTED)
    assert ticks.tick().run_requests == []  # running: the weeks wait
    assert set(json.loads(ticks.cursor)["waiting"]) == {WEEK_PARTITION, "2025-08-18"}


def test_a_week_rolled_up_after_its_posterior_is_not_rolled_up_again(ticks):
    ticks.tick()
    _posterior(ticks.instance, PERMIAN)
    _materialise_alerts(ticks.instance, ticks.store, ticks.notifier)  # e.g. a backfill's roll-up
    assert ticks.tick().run_requests == [] and json.loads(ticks.cursor)["waiting"] == {}
    _posterior(ticks.instance, PERMIAN)  # the event run again: its week again
    assert [p for p, _ in _requests(ticks.tick())] == [WEEK_PARTITION]


def test_a_week_waits_while_any_run_of_it_is_in_flight(ticks):
    ticks.tick()
    _posterior(ticks.instance, PERMIAN)
    [request] = ticks.tick().run_requests
    running = _launch(ticks.instance, request, DagsterRunStatus.STARTED, job_name="__ASSET_JOB")
    assert ticks.tick().run_requests == []  # a UI or backfill materialisation of the week is running
    ticks.instance.report_run_canceled(running)
    [again] = ticks.tick().run_requests  # cancelled before it materialised the alerts
    assert again.partition_key == WEEK_PARTITION and again.run_key.endswith(":1")


def test_a_week_waits_while_a_backfill_will_roll_it_up(ticks):
    ticks.instance.add_dynamic_partitions(detection_events.name, [PERMIAN.key])
    backfill = launch_week_backfill(ticks.instance, defs.resolve_asset_graph(), WEEK)
    ticks.tick()
    _posterior(ticks.instance, PERMIAN)  # the backfill's event run is done; its roll-up is still to come
    assert ticks.tick().run_requests == []
    ticks.instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELED))
    assert [p for p, _ in _requests(ticks.tick())] == [WEEK_PARTITION]


def test_a_failing_roll_up_is_requested_again_then_given_up(ticks):
    ticks.tick()
    _posterior(ticks.instance, PERMIAN)
    keys = []
    for _ in range(MAX_RUN_FAILURES):
        [request] = ticks.tick().run_requests
        keys.append(request.run_key)
        _launch(ticks.instance, request, DagsterRunStatus.FAILURE)
    assert len(set(keys)) == MAX_RUN_FAILURES  # no request dropped as a duplicate run key
    assert ticks.tick().run_requests == [] and json.loads(ticks.cursor)["waiting"] == {}
    _posterior(ticks.instance, BELCHATOW)  # something new in the week: asked again
    [request] = ticks.tick().run_requests
    assert request.run_key.endswith(":0") and request.run_key not in keys


def test_a_week_outside_the_partitions_is_not_requested(ticks):
    ticks.tick()
    _posterior(ticks.instance, OLD_EVENT)
    result = ticks.tick()
    assert result.run_requests == [] and json.loads(ticks.cursor)["waiting"] == {}


def test_a_failing_resend_run_is_requested_again_then_given_up(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/hook"
    store = OutputStore(root=str(tmp_path))
    payload = alert_payload(permian_row().to_dict("records")[0], "run-1")
    deliver_alerts([payload], {}, [url], ledger_path(store, WEEK), WebhookClient(RetryPolicy(attempts=1)),
                   "run-1", WEEK)
    with instance_for_test() as instance:
        ticks = Ticks(instance, store, NotifierResource(urls=[url], resend_after_s=0.0))
        keys = []
        for _ in range(MAX_RUN_FAILURES):
            [request] = ticks.tick().run_requests
            assert request.asset_selection == [AssetKey("alerts")]
            keys.append(request.run_key)
            _launch(instance, request, DagsterRunStatus.FAILURE)
        assert len(set(keys)) == MAX_RUN_FAILURES
        given_up = ticks.tick()
        message = given_up.skip_reason.skip_message
        assert given_up.run_requests == [] and "1 resend(s) given up" in message
        assert "next resend due" not in message  # the given-up resend is not coming
        assert ticks.tick().run_requests == []


def test_an_unreadable_ledger_is_logged_once_while_it_lasts_and_counted_on_every_tick(ticks, capfd):
    """The sensor's log lines go to the process's stderr (the daemon's log)."""
    ledger = ledger_path(ticks.store, WEEK)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    broken = '{"webhooks": '  # cut short by a full disk
    ledger.write_text(broken)
    stderr: list[str] = []

    def logged() -> int:
        stderr.append(capfd.readouterr().err)
        return sum(f"ERROR - {ledger}: delivery ledger unreadable" in line
                   for line in "".join(stderr).splitlines())

    for expected in (1, 1):
        assert "1 unreadable delivery record(s)" in ticks.tick().skip_reason.skip_message
        assert logged() == expected
    ledger.unlink()
    assert "unreadable" not in ticks.tick().skip_reason.skip_message
    ledger.write_text(broken)  # broken again: a new occurrence is logged again
    ticks.tick()
    assert logged() == 2


@pytest.mark.slow
def test_a_failed_delivery_is_resent_from_the_sensors_own_request(tmp_path):
    store = OutputStore(root=str(tmp_path))
    write_event(tmp_path, permian_row())
    with webhook_server() as hook, instance_for_test() as instance:
        def notifier(resend_after_s: float) -> NotifierResource:
            return NotifierResource(urls=[hook.url], attempts=1, resend_after_s=resend_after_s)

        hook.default = 503
        _materialise_alerts(instance, store, notifier(0.0))
        [(_, _, pending)] = DeliveryLedger.load(ledger_path(store, WEEK)).pending()
        assert pending["retryable"] and pending["failures"] == 1

        waiting = Ticks(instance, store, notifier(3600.0)).tick()
        assert waiting.run_requests == []  # an hour's backoff has not passed
        due_at = iso_z(parse_time(pending["at"]) + timedelta(hours=1))
        message = waiting.skip_reason.skip_message
        assert f"1 failed delivery(ies) pending (next resend due {due_at})" in message
        due = Ticks(instance, store, notifier(0.0))
        [request] = due.tick().run_requests
        assert request.partition_key == WEEK_PARTITION
        assert request.asset_selection == [AssetKey("alerts")]
        assert request.tags["attribution/trigger"] == "failed delivery"

        hook.default = 200
        _materialise_alerts(instance, store, notifier(0.0), request.partition_key)
        assert DeliveryLedger.load(ledger_path(store, WEEK)).pending() == []
        assert hook.keys() == [pending["key"], pending["key"]]  # resent with the failed round's key
        assert due.tick().run_requests == []


@pytest.mark.slow
def test_a_refused_delivery_is_not_resent(tmp_path):
    store = OutputStore(root=str(tmp_path))
    write_event(tmp_path, permian_row())
    with webhook_server() as hook, instance_for_test() as instance:
        notifier = NotifierResource(urls=[hook.url], attempts=1, resend_after_s=0.0)
        hook.default = 401
        _materialise_alerts(instance, store, notifier)
        assert len(DeliveryLedger.load(ledger_path(store, WEEK)).pending()) == 1
        result = Ticks(instance, store, notifier).tick()
    assert result.run_requests == [] and len(hook.requests) == 1
