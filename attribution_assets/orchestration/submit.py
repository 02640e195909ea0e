"""Submit runs of a job of the code location to the instance, and wait on them with progress.

A submitted run is what the UI's "Materialize" creates: it carries the code location's origin, is
queued by the instance's run coordinator (its limits apply) and launched by the run launcher in its own
process, so it shows on the job and overview pages and can be re-executed from the UI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.workspace.context import WorkspaceRequestContext

from attribution_assets.events import DetectionEvent
from attribution_assets.orchestration.workspace import code_location

PARTITION_TAG = "dagster/partition"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
"""Statuses of a run that has been submitted and has not finished (one being cancelled included)."""
"""Run statuses after which nothing more happens to a run."""


def submit_run(
    instance: DagsterInstance,
    workspace: WorkspaceRequestContext,
    job_name: str,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    partition_key: str | None = None,
) -> DagsterRun:
    """Create a run of ``job_name`` (for ``partition_key`` when given) and submit it to the instance's
    run coordinator; returns the run as submitted (``QUEUED`` under the queued coordinator). The run
    carries the job's own run tags (as a sensor's or the UI's run of the job does), then ``tags``."""
    location = code_location(workspace)
    repository = next(iter(location.get_repositories().values()))
    selector = JobSubsetSelector(
        location_name=location.name, repository_name=repository.name, job_name=job_name, op_selection=None
    )
    remote_job = location.get_job(selector)
    run_tags = {**remote_job.run_tags, **(tags or {})}
    if partition_key is not None:
        run_tags[PARTITION_TAG] = partition_key
    config = dict(run_config or {})
    plan = location.get_execution_plan(
        remote_job, config, step_keys_to_execute=None, known_state=None, instance=instance
    )
    run = instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config=config,
        resolved_op_selection=None,
        step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags=run_tags,
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repository.asset_graph,
    )
    return instance.submit_run(run.run_id, workspace)


@dataclass
class RunProgress:
    """What a watcher has seen of one run: its status and the steps that finished, in order."""

    run_id: str
    label: str
    status: DagsterRunStatus = DagsterRunStatus.QUEUED
    steps_done: list[str] = field(default_factory=list)
    steps_failed: list[str] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None
    cursor: str | None = None

    @property
    def seconds(self) -> float:
        """Wall time from the first start seen to the end (or now), seconds."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started


StepEcho = Callable[[RunProgress, str, str], None]
"""Called with (progress, step key, "done" | "failed") for every finished step."""
RunEcho = Callable[[RunProgress], None]
"""Called once a run has finished."""

_STEP_EVENTS = [DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE]


def _poll_steps(instance: DagsterInstance, progress: RunProgress, on_step: StepEcho | None) -> None:
    for event_type in _STEP_EVENTS:
        records = instance.get_records_for_run(progress.run_id, of_type=event_type).records
        seen = progress.steps_done if event_type == DagsterEventType.STEP_SUCCESS else progress.steps_failed
        for record in records:
            step = record.event_log_entry.step_key or ""
            if step and step not in seen:
                seen.append(step)
                if on_step is not None:
                    on_step(progress, step, "done" if seen is progress.steps_done else "failed")


def wait_for_runs(
    instance: DagsterInstance,
    runs: Sequence[RunProgress],
    on_step: StepEcho | None = None,
    on_finish: RunEcho | None = None,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
) -> list[RunProgress]:
    """Poll the runs until every one has finished, calling ``on_step`` for each finished step and
    ``on_finish`` for each finished run; returns ``runs`` with their final status. Raises
    ``TimeoutError`` after ``timeout_s`` seconds (the runs go on)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    pending = list(runs)
    while pending:
        for progress in list(pending):
            run = instance.get_run_by_id(progress.run_id)
            if run is None:
                raise RuntimeError(f"run {progress.run_id} ({progress.label}) vanished from the instance")
            progress.status = run.status
            if progress.started is None and run.status not in (
                DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED
            ):
                progress.started = time.time()
            _poll_steps(instance, progress, on_step)
            if run.status in FINISHED:
                progress.finished = time.time()
                pending.remove(progress)
                if on_finish is not None:
                    on_finish(progress)
        if pending:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} runs still going after {timeout_s:.0f} s")
            time.sleep(poll_s)
    return list(runs)


def longest_first(event_of: Mapping[str, DetectionEvent], catalog_path: Path) -> list[str]:
    """The keys of ``event_of`` (event key -> event) in the order to submit them: most instruments
    with a catalogued overpass first (ties in the mapping's order).

    An event's run time grows with the instruments it inverts jointly (each adds observation groups,
    overpass winds and its own compiled program: in the demo the three-instrument event takes about
    twice as long as the others), and the queue starts runs in submission order, so submitting the
    longest first keeps a long run from starting last on an otherwise idle machine
    (longest-processing-time-first scheduling). Without a catalog the alerts' order is kept.
    """
    if not catalog_path.exists():
        return list(event_of)
    from attribution_assets.pipeline.overpasses import granule_counts, resolve_overpasses
    from attribution_assets.pipeline.settings import INSTRUMENTS, EventSettings

    settings = EventSettings()
    instruments = {}
    for key, event in event_of.items():
        counts = granule_counts(resolve_overpasses(event, catalog_path, settings))
        instruments[key] = sum(counts[name] > 0 for name in INSTRUMENTS)
    return sorted(event_of, key=lambda key: -instruments[key])
