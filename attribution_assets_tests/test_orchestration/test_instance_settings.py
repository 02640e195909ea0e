"""What the instance settings of ``dagster.yaml`` and of the production template do under faults.

- A run killed while its inversion held a pool slot gives the slot back: without the daemon's freeing
  of slots held by ended runs, a step process killed mid-inversion (an out-of-memory kill, a dead
  worker) kept its ``inversion`` slot for good and no later inversion started.
- A run dequeued while its code location cannot load (the database or code server briefly down) is
  queued again: with Dagster's default, a 10 s PostgreSQL restart failed every run dequeued then.
- A roll-up starts beside two event runs, and a third event run waits: with one limit for all runs, a
  finished week's roll-up (queue priority) took the next event run's slot."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from dagster import DagsterRunStatus
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import PARTITION_NAME_TAG, PRIORITY_TAG
from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.monitoring import concurrency
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._time import get_current_datetime

from attribution_assets.definitions import defs
from attribution_assets.jobs import COMPUTE_RUN_TAGS, ROLLUP_PRIORITY
from attribution_assets.paths import REPO_ROOT

POOL = "inversion"


TEMPLATES = [REPO_ROOT / "dagster.yaml", REPO_ROOT / "deploy" / "dagster.yaml"]


def _settings(template: Path) -> dict:
    """The queue, pool and monitoring settings of an instance template (not its storage)."""
    config = yaml.safe_load(template.read_text())
    return {key: config[key] for key in ("run_monitoring", "concurrency", "run_coordinator")}


def _free_slots_after(instance, seconds: float, monkeypatch) -> None:
    """One pass of the daemon's slot monitor, as it runs ``seconds`` from now."""
    later = get_current_datetime() + timedelta(seconds=seconds)
    monkeypatch.setattr(concurrency, "get_current_datetime", lambda: later)
    with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as context:
        list(concurrency.execute_concurrency_slots_iteration(context, logging.getLogger(__name__)))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_a_failed_runs_inversion_slot_is_freed_after_the_configured_delay(
    template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delay = _settings(template)["run_monitoring"]["free_slots_after_run_end_seconds"]
    with instance_for_test(overrides=_settings(template)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(POOL, 1)
        killed = instance.add_run(DagsterRun(job_name="attribute_event", run_id="killed-run"))
        assert storage.claim_concurrency_slot(POOL, killed.run_id, "source_posterior").is_claimed
        instance.report_run_failed(killed, "step process killed during source_posterior")
        assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.FAILURE
        waiting = instance.add_run(DagsterRun(job_name="attribute_event", run_id="next-run"))
        assert not storage.claim_concurrency_slot(POOL, waiting.run_id, "source_posterior").is_claimed
        _free_slots_after(instance, delay / 2, monkeypatch)  # too early: the run may still be letting go
        assert storage.get_concurrency_info(POOL).active_slot_count == 1
        _free_slots_after(instance, delay + 5, monkeypatch)
        assert storage.get_concurrency_info(POOL).active_slot_count == 0
        assert storage.claim_concurrency_slot(POOL, waiting.run_id, "source_posterior").is_claimed


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_the_queue_is_told_to_retry_a_code_location_that_fails_to_load(template: Path) -> None:
    """The setting reaches the queue as Dagster reads it (the retry itself is Dagster's daemon's)."""
    with instance_for_test(overrides=_settings(template)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_user_code_failure_retries == 3 and queue.user_code_failure_retry_delay == 20


def _dequeue_once(instance) -> None:
    """One pass of the daemon's queue (runs launched by Dagster's recording test launcher)."""
    with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as context:
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(context))


def _run(instance, job_name: str, partition: str, status: DagsterRunStatus, tags: dict | None = None):
    """A run of ``job_name`` for ``partition`` (queued runs need the code location they come from)."""
    repository = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("attribution_assets"), "__repository__")
    tags = {**(tags or {}), PARTITION_NAME_TAG: partition}
    return instance.add_run(DagsterRun(job_name=job_name, status=status, tags=tags,
                                       remote_job_origin=RemoteJobOrigin(repository, job_name)))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_a_roll_up_starts_beside_two_event_runs_and_a_third_event_run_waits(template: Path) -> None:
    for name in ("attribute_event", "scan_detections"):  # a job's tags go on its runs however launched
        job = defs.resolve_job_def(name)
        assert job.tags == job.run_tags == COMPUTE_RUN_TAGS
    launcher = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}
    with instance_for_test(overrides={**_settings(template), "run_launcher": launcher}) as instance:
        status = lambda run: instance.get_run_by_id(run.run_id).status  # noqa: E731
        started = DagsterRunStatus.STARTED
        events = [_run(instance, "attribute_event", f"CH4_{i}", started, COMPUTE_RUN_TAGS) for i in range(2)]
        waiting = _run(instance, "attribute_event", "CH4_2", DagsterRunStatus.QUEUED, COMPUTE_RUN_TAGS)
        _dequeue_once(instance)
        assert status(waiting) == DagsterRunStatus.QUEUED, "three event runs at once"
        rollup = _run(instance, "weekly_rollup", "2025-08-11", DagsterRunStatus.QUEUED,
                      {PRIORITY_TAG: str(ROLLUP_PRIORITY)})
        _dequeue_once(instance)
        assert status(rollup) == DagsterRunStatus.STARTING, "the roll-up waited for an event run's slot"
        assert status(waiting) == DagsterRunStatus.QUEUED
        instance.report_run_failed(events[0], "ended")
        _dequeue_once(instance)
        assert status(waiting) == DagsterRunStatus.STARTING
