"""Alerts without a person: the alert-delivery sensor rolls up the week of each new posterior, waits
while a roll-up of that week is in flight, and resends failed webhook deliveries once their backoff has
passed. Real Dagster instance and event log, real posterior files, a real webhook on 127.0.0.1 and the
``alerts`` asset materialised from the sensor's own run request. (The daemon drives this sensor from an
alert file to a delivered alert in ``test_parity.py``.)"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    SensorResult,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from dagster._core.storage.tags import PARTITION_NAME_TAG, PRIORITY_TAG

from attribution_assets.alerting.delivery import DeliveryLedger
from attribution_assets.alerting.resource import NotifierResource
from attribution_assets.assets.alerts import alerts, ledger_path
from attribution_assets.events import DetectionEvent
from attribution_assets.jobs import ROLLUP_PRIORITY, rollup_job
from attribution_assets.resources import OutputStore
from attribution_assets.sensors import alert_delivery_sensor
from attribution_assets_tests.test_alerting.helpers import (
    BELCHATOW,
    PERMIAN,
    WEEK,
    WEEK_PARTITION,
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


def _rollup_run(instance: DagsterInstance, monday: str, status: DagsterRunStatus) -> DagsterRun:
    return instance.add_run(DagsterRun(job_name=rollup_job.name, run_id=str(uuid.uuid4()), status=status,
                                       tags={PARTITION_NAME_TAG: monday}))


def _requests(result: SensorResult) -> list[tuple[str, str, tuple | None]]:
    return [(r.partition_key, r.run_key.split(":")[0],
             None if r.asset_selection is None else tuple(r.asset_selection)) for r in result.run_requests]


@pytest.fixture
def ticks(tmp_path):
    with instance_for_test() as instance:
        yield Ticks(instance, OutputStore(root=str(tmp_path)), NotifierResource(urls=[]))


def test_each_new_posterior_rolls_up_its_week_once(ticks):
    _posterior(ticks.instance, PERMIAN)  # before the sensor is switched on: not redone
    first = ticks.tick()
    assert first.run_requests == [] and "no new posterior" in first.skip_reason.skip_message
    _posterior(ticks.instance, PERMIAN)
    _posterior(ticks.instance, BELCHATOW)  # the same ISO week
    _posterior(ticks.instance, NEXT_WEEK_EVENT)
    second = ticks.tick()
    assert _requests(second) == [(WEEK_PARTITION, "rollup", None), ("2025-08-18", "rollup", None)]
    assert {r.tags[PRIORITY_TAG] for r in second.run_requests} == {str(ROLLUP_PRIORITY)}
    assert len({r.run_key for r in second.run_requests}) == 2
    assert ticks.tick().run_requests == []
    _posterior(ticks.instance, PERMIAN)  # the event run again: its week again, under a new run key
    [again] = ticks.tick().run_requests
    assert again.partition_key == WEEK_PARTITION
    assert again.run_key not in {r.run_key for r in second.run_requests}


def test_a_week_waits_while_its_roll_up_is_in_flight(ticks):
    ticks.tick()
    running = _rollup_run(ticks.instance, WEEK_PARTITION, DagsterRunStatus.STARTED)
    _rollup_run(ticks.instance, "2025-08-18", DagsterRunStatus.SUCCESS)
    _posterior(ticks.instance, PERMIAN)
    _posterior(ticks.instance, NEXT_WEEK_EVENT)
    assert _requests(ticks.tick()) == [("2025-08-18", "rollup", None)]
    assert json.loads(ticks.cursor)["waiting"].keys() == {WEEK_PARTITION}
    assert ticks.tick().run_requests == []  # still running
    ticks.instance.report_run_canceled(running)
    assert _requests(ticks.tick()) == [(WEEK_PARTITION, "rollup", None)]
    assert json.loads(ticks.cursor)["waiting"] == {}


def test_a_week_outside_the_partitions_is_not_requested(ticks):
    ticks.tick()
    _posterior(ticks.instance, OLD_EVENT)
    result = ticks.tick()
    assert result.run_requests == [] and json.loads(ticks.cursor)["waiting"] == {}


@pytest.mark.slow
def test_a_failed_delivery_is_resent_from_the_sensors_own_request(tmp_path):
    store = OutputStore(root=str(tmp_path))
    write_event(tmp_path, permian_row())
    with webhook_server() as hook, instance_for_test() as instance:
        def notifier(resend_after_s: float) -> NotifierResource:
            return NotifierResource(urls=[hook.url], attempts=1, resend_after_s=resend_after_s)

        def materialise_alerts(partition_key: str) -> None:
            resources = {"store": store, "notifier": notifier(0.0)}
            assert materialize([alerts], partition_key=partition_key, resources=resources,
                               instance=instance).success

        hook.default = 503
        materialise_alerts(WEEK_PARTITION)
        [(_, _, pending)] = DeliveryLedger.load(ledger_path(store, WEEK)).pending()
        assert pending["retryable"] and pending["failures"] == 1

        waiting = Ticks(instance, store, notifier(3600.0))
        assert waiting.tick().run_requests == []  # an hour's backoff has not passed
        due = Ticks(instance, store, notifier(0.0))
        [request] = due.tick().run_requests
        assert request.partition_key == WEEK_PARTITION
        assert request.asset_selection == [AssetKey("alerts")]
        assert request.tags["attribution/trigger"] == "failed delivery"

        hook.default = 200
        materialise_alerts(request.partition_key)
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
        assert materialize([alerts], partition_key=WEEK_PARTITION, instance=instance,
                           resources={"store": store, "notifier": notifier}).success
        assert len(DeliveryLedger.load(ledger_path(store, WEEK)).pending()) == 1
        result = Ticks(instance, store, notifier).tick()
    assert result.run_requests == [] and len(hook.requests) == 1
