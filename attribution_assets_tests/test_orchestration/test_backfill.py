""""Backfill week W": one asset backfill on the instance, executed by the daemon's own code through the
run queue, re-executable from failure; and ``attribution backfill --week`` using it."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, instance_for_test
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import PARENT_BACKFILL_ID_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.backfill import execute_backfill_iteration

from attribution_assets.cli import EXIT_OK, EXIT_PARTIAL, failure_path, main
from attribution_assets.events import DetectionEvent
from attribution_assets.jobs import COMPUTE_RUN_TAGS
from attribution_assets.orchestration.backfill import (
    WEEK_TAG,
    backfill_event_keys,
    backfill_runs,
    event_asset_keys,
    launch_week_backfill,
    week_backfill_subset,
)
from attribution_assets.orchestration.workspace import workspace_file
from attribution_assets.partitions import register_events
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.resources import OutputStore

# the week of the Bełchatów sample event (one OCO-2 track: the cheapest sample inversion)
WEEK, MONDAY = "2025-W24", "2025-06-09"
BELCHATOW_AT = (19.3308, 51.2660, "CO2")  # longitude, latitude, gas
BELCHATOW = DetectionEvent(datetime(2025, 6, 10, 12, 10, tzinfo=UTC), *BELCHATOW_AT, "belchatow-co2")
BELCHATOW_LATER = DetectionEvent(datetime(2025, 6, 10, 12, 13, tzinfo=UTC), *BELCHATOW_AT, "later")
OTHER_WEEKS = [
    DetectionEvent(datetime(2025, 6, 16, 0, 0, tzinfo=UTC), *BELCHATOW_AT, "w25-monday"),
    DetectionEvent(datetime(2025, 8, 14, 17, 31, tzinfo=UTC), -103.6100, 31.9095, "CH4", "permian-ch4"),
]
FAST = ["--chains", "2", "--warmup", "100", "--samples", "100", "--no-escalate", "--offline"]
QUEUED = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}


@contextmanager
def daemon_context(instance: DagsterInstance) -> Iterator[WorkspaceProcessContext]:
    """The workspace the daemon loads (the code location in a code-server process)."""
    target = WorkspaceFileTarget(paths=[str(workspace_file(instance))])
    with WorkspaceProcessContext(instance, target) as context:
        yield context


def _partition_keys(runs) -> list[str]:
    return sorted(run.tags["dagster/partition"] for run in runs)


def test_week_backfill_targets_the_weeks_events_then_runs_them_through_the_queue_before_the_rollup() -> None:
    with instance_for_test(overrides=QUEUED) as instance, daemon_context(instance) as context:
        keys = register_events(instance, [BELCHATOW, BELCHATOW_LATER, *OTHER_WEEKS])
        week_keys = sorted(keys[:2])
        asset_graph = context.create_request_context().asset_graph
        subset, found = week_backfill_subset(instance, asset_graph, WEEK)
        assert found == week_keys, "Monday 00:00 to Sunday 23:59 UTC only"
        for asset in event_asset_keys(asset_graph):
            assert sorted(subset.get_partitions_subset(asset).get_partition_keys()) == week_keys
        for asset in ("weekly_posteriors", "alerts"):
            assert list(subset.get_partitions_subset(AssetKey(asset)).get_partition_keys()) == [MONDAY]
        assert AssetKey("overpass_catalog") not in subset.asset_keys

        backfill = launch_week_backfill(instance, context.create_request_context(), WEEK, {"resources": {}})
        assert [b.backfill_id for b in instance.get_backfills()] == [backfill.backfill_id]
        assert backfill.tags[WEEK_TAG] == WEEK and backfill.is_asset_backfill

        # the daemon's backfill iteration: one run per event, submitted to the queue; the roll-up waits
        logger = logging.getLogger("test_backfill")
        list(execute_backfill_iteration(context, logger))
        runs = backfill_runs(instance, backfill.backfill_id)
        assert _partition_keys(runs) == week_keys
        assert all(run.status == DagsterRunStatus.QUEUED for run in runs), "through the run queue"
        assert all(COMPUTE_RUN_TAGS.items() <= run.tags.items() for run in runs), "compute runs"
        for run in runs:
            assert set(run.asset_selection) == set(event_asset_keys(asset_graph)), "every stage in one run"
            enqueued = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_ENQUEUED)
            assert len(enqueued.records) == 1
        list(execute_backfill_iteration(context, logger))
        assert _partition_keys(backfill_runs(instance, backfill.backfill_id)) == week_keys, (
            "no roll-up run while the week's events are not materialised"
        )
        assert instance.get_backfill(backfill.backfill_id).status == BulkActionStatus.REQUESTED


def test_a_week_without_events_or_outside_the_partitions_is_refused() -> None:
    from attribution_assets.definitions import defs

    with instance_for_test(overrides=QUEUED) as instance:
        register_events(instance, OTHER_WEEKS)
        with pytest.raises(ValueError, match=f"no registered event in {WEEK}"):
            launch_week_backfill(instance, defs.resolve_asset_graph(), WEEK)
        with pytest.raises(ValueError, match="outside the week partitions"):
            launch_week_backfill(instance, defs.resolve_asset_graph(), "2023-W10")
        assert instance.get_backfills() == []


def test_backfill_week_job_is_the_ui_launch_pad_of_the_same_backfill() -> None:
    from attribution_assets.definitions import defs

    with instance_for_test() as instance:
        register_events(instance, [BELCHATOW, *OTHER_WEEKS])
        settings = {"alert_threshold_co2_kg_h": 5.0e6, "oco2_half_width_km": 40.0, "seed": 3}
        result = defs.resolve_job_def("backfill_week").execute_in_process(
            partition_key=MONDAY, instance=instance,
            run_config={"resources": {"settings": {"config": settings}}},
        )
        assert result.success
        (backfill,) = instance.get_backfills()
        assert instance.get_run_by_id(result.run_id).tags["attribution/backfill"] == backfill.backfill_id
        assert backfill.tags[WEEK_TAG] == WEEK and backfill_event_keys(backfill) == [BELCHATOW.key]
        assert set(backfill.run_config["resources"]) >= {"archive", "store", "settings", "io_manager"}
        # the backfill's runs get the launching run's settings, sampler and others alike
        assert backfill.run_config["resources"]["settings"]["config"].items() >= settings.items()


def _step_successes(instance: DagsterInstance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_SUCCESS).records
    return {record.event_log_entry.step_key for record in records}


@pytest.mark.slow
def test_cli_backfill_week_runs_one_daemon_backfill_and_reexecutes_only_the_failed_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home, output = tmp_path / "dagster_home", tmp_path / "out"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    home.mkdir()
    shutil.copy(Path(__file__).parents[2] / "dagster.yaml", home / "dagster.yaml")
    alerts = tmp_path / "alerts.csv"
    rows = [f"{e.event_id},{e.time:%Y-%m-%dT%H:%M:%SZ},{e.latitude},{e.longitude},{e.gas}"
            for e in (BELCHATOW, BELCHATOW_LATER, *OTHER_WEEKS)]
    alerts.write_text("event_id,event_time,latitude,longitude,gas\n" + "\n".join(rows) + "\n")
    with DagsterInstance.get() as instance:
        register_events(instance, OTHER_WEEKS)  # registered, but in other weeks
    store = OutputStore(root=str(output))
    # a directory where BELCHATOW_LATER's posterior file goes: its event_posterior step fails (fixable)
    trap = store.posterior_path(WEEK, BELCHATOW_LATER.key)
    (trap / "blocker").mkdir(parents=True)
    argv = ["backfill", "--week", WEEK, "--archive", str(SAMPLE_ARCHIVE), "--output", str(output), *FAST]

    assert main([*argv, "--alerts", str(alerts)]) == EXIT_PARTIAL
    out = capsys.readouterr().out
    assert f"{BELCHATOW.key}: run " in out
    assert "event_posterior done" in out and "event_posterior failed" in out
    with DagsterInstance.get() as instance:
        (first,) = instance.get_backfills()
        assert first.tags[WEEK_TAG] == WEEK and first.status == BulkActionStatus.COMPLETED_FAILED
        runs = backfill_runs(instance, first.backfill_id)
        assert _partition_keys(runs) == sorted([BELCHATOW.key, BELCHATOW_LATER.key]), "the week's events"
        for run in runs:
            for event_type in (DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_STARTING):
                assert instance.get_records_for_run(run.run_id, of_type=event_type).records, event_type
        by_key = {run.tags["dagster/partition"]: run for run in runs}
        assert by_key[BELCHATOW.key].status == DagsterRunStatus.SUCCESS
        assert by_key[BELCHATOW_LATER.key].status == DagsterRunStatus.FAILURE
        assert "source_posterior" in _step_successes(instance, by_key[BELCHATOW_LATER.key].run_id)
    assert "event_posterior" in failure_path(output, BELCHATOW_LATER.key).read_text()
    assert not (store.weekly_dir / f"week={WEEK}" / "posteriors.parquet").exists(), "roll-up waits"

    shutil.rmtree(trap)
    assert main([*argv, "--from-failure"]) == EXIT_OK
    with DagsterInstance.get() as instance:
        retry, _ = instance.get_backfills()
        assert retry.tags[PARENT_BACKFILL_ID_TAG] == first.backfill_id
        assert retry.status == BulkActionStatus.COMPLETED_SUCCESS
        event_run, rollup_run = backfill_runs(instance, retry.backfill_id)
        assert event_run.tags["dagster/partition"] == BELCHATOW_LATER.key, "only the failed event runs again"
        assert _step_successes(instance, event_run.run_id) == {"event_posterior"}, "only its failed stage"
        assert rollup_run.tags["dagster/partition"] == MONDAY
        assert COMPUTE_RUN_TAGS.items() <= event_run.tags.items(), "a re-execution too"
        assert {AssetKey("weekly_posteriors"), AssetKey("alerts")} <= set(rollup_run.asset_selection)
        # exact event-log times (a run record's create time is whole seconds on SQLite)
        posterior_written = instance.get_records_for_run(
            event_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records[-1].timestamp
        rollup_first = instance.get_records_for_run(rollup_run.run_id, limit=1).records[0].timestamp
        assert rollup_first >= posterior_written, "roll-up after the event's posterior"
        assert instance.get_materialized_partitions(AssetKey("weekly_posteriors")) == {MONDAY}
    rollup = gpd.read_parquet(store.weekly_dir / f"week={WEEK}" / "posteriors.parquet")
    assert sorted(rollup["event_key"]) == sorted([BELCHATOW.key, BELCHATOW_LATER.key])
    assert not failure_path(output, BELCHATOW_LATER.key).exists()
