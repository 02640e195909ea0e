""""Backfill week W": one Dagster asset backfill of every event of an ISO week, then the week's roll-up.

The backfill is an instance object (``PartitionBackfill``), so it shows on the UI's Backfills page. It
targets the per-event assets (the ``attribute_event`` job's assets) for each registered event partition
whose event time falls in the week, and the week's partition of ``weekly_posteriors`` and ``alerts``.
The daemon's asset-backfill loop executes it: it submits one run per event through the run queue
(``QueuedRunCoordinator`` limits apply) and, once every targeted event partition is materialised, the
roll-up run (``weekly_posteriors`` depends on ``event_posterior`` with ``AllPartitionMapping``). An event
that fails keeps the roll-up from running (its partitions are "failed and downstream");
:func:`reexecute_failed` is the UI's "Re-execute from failure" (the same GraphQL mutation): a new backfill
of what was not materialised, i.e. the failed event stages and the roll-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetKey, DagsterInstance, DagsterRun, DynamicPartitionsDefinition
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import (
    BULK_ACTION_TERMINAL_STATUSES,
    BulkActionsFilter,
    BulkActionStatus,
    PartitionBackfill,
)
from dagster._core.storage.dagster_run import RunsFilter
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._core.utils import make_new_backfill_id
from dagster._core.workspace.context import WorkspaceRequestContext
from dagster._time import get_current_timestamp

from attribution_assets.events import AlertFormatError, is_event_key
from attribution_assets.jobs import COMPUTE_RUN_TAGS, EVENT_ASSETS, WEEK_ASSETS
from attribution_assets.orchestration.submit import (
    FINISHED,
    PARTITION_TAG,
    RunEcho,
    RunProgress,
    StepEcho,
    _poll_steps,
)
from attribution_assets.partitions import (
    detection_events,
    events_of_week,
    partition_of_week,
    week_of_partition,
    weekly_partitions,
)

WEEK_TAG = "attribution/week"
"""Tag of a week backfill (and of its runs): the ISO week ``YYYY-Www``."""
TERMINAL = set(BULK_ACTION_TERMINAL_STATUSES)
"""Backfill statuses after which the daemon does nothing more with it."""
_REEXECUTE = """
mutation ($backfillId: String!) {
  reexecutePartitionBackfill(reexecutionParams: {parentRunId: $backfillId, strategy: FROM_FAILURE}) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
  }
}
"""


def _asset_graph(workspace_or_asset_graph: WorkspaceRequestContext | BaseAssetGraph) -> BaseAssetGraph:
    if isinstance(workspace_or_asset_graph, BaseAssetGraph):
        return workspace_or_asset_graph
    return workspace_or_asset_graph.asset_graph


def event_asset_keys(asset_graph: BaseAssetGraph) -> list[AssetKey]:
    """The ``attribute_event`` job's assets, i.e. those partitioned by detection event, in graph order."""
    keys = EVENT_ASSETS.resolve(asset_graph)
    return [
        key
        for key in asset_graph.toposorted_asset_keys
        if key in keys
        and isinstance(asset_graph.get(key).partitions_def, DynamicPartitionsDefinition)
        and asset_graph.get(key).partitions_def.name == detection_events.name
    ]


def week_asset_keys(asset_graph: BaseAssetGraph) -> list[AssetKey]:
    """The roll-up assets of a week (``weekly_posteriors``, ``alerts``), in graph order."""
    keys = WEEK_ASSETS.resolve(asset_graph)
    return [key for key in asset_graph.toposorted_asset_keys if key in keys]


def week_backfill_subset(
    instance: DagsterInstance, asset_graph: BaseAssetGraph, week: str
) -> tuple[AssetGraphSubset, list[str]]:
    """What a backfill of ISO week ``week`` (``YYYY-Www``) targets: every event asset for each registered
    event of the week, and the week's partition of the roll-up assets (an unpartitioned one whole).
    Returns the subset and the week's event keys (sorted)."""
    week_key = partition_of_week(week)
    if not weekly_partitions.has_partition_key(week_key):
        first = f"{weekly_partitions.start:%Y-%m-%d}"
        raise AlertFormatError(f"week {week} is outside the week partitions ({first} to the current week)")
    keys = events_of_week(instance, week)
    targets = {AssetKeyPartitionKey(asset, key) for asset in event_asset_keys(asset_graph) for key in keys}
    for asset in week_asset_keys(asset_graph):
        partitioned = asset_graph.get(asset).partitions_def is not None
        targets.add(AssetKeyPartitionKey(asset, week_key if partitioned else None))
    return AssetGraphSubset.from_asset_partition_set(targets, asset_graph), keys


def launch_week_backfill(
    instance: DagsterInstance,
    workspace_or_asset_graph: WorkspaceRequestContext | BaseAssetGraph,
    week: str,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> PartitionBackfill:
    """Add to the instance a backfill of week ``week``: the week's events, then its roll-up.

    ``run_config`` is given to every run of the backfill (archive, output and settings:
    :func:`~attribution_assets.orchestration.config.resources_config`). Every run of it carries
    :data:`~attribution_assets.jobs.COMPUTE_RUN_TAGS` (an asset backfill gives its runs the backfill's
    tags: the roll-up's too, which runs after the events anyway), then ``tags``. The daemon executes it.
    Raises :class:`~attribution_assets.events.AlertFormatError` for a malformed week or one outside the
    week partitions, and ``ValueError`` when no event of the week is registered.
    """
    subset, keys = week_backfill_subset(instance, _asset_graph(workspace_or_asset_graph), week)
    if not keys:
        raise ValueError(f"no registered event in {week}")
    backfill = PartitionBackfill.from_asset_graph_subset(
        backfill_id=make_new_backfill_id(),
        backfill_timestamp=get_current_timestamp(),
        tags={**COMPUTE_RUN_TAGS, **(tags or {}), WEEK_TAG: week},
        dynamic_partitions_store=instance,
        asset_graph_subset=subset,
        title=f"Week {week}: {len(keys)} event{'' if len(keys) == 1 else 's'}, then the roll-up",
        description=f"Every event registered in ISO week {week} ({len(keys)}), then the week's roll-up "
        "and alerts.",
        run_config=run_config,
    )
    instance.add_backfill(backfill)
    return backfill


def reexecute_failed(workspace: WorkspaceRequestContext, backfill_id: str) -> PartitionBackfill:
    """Re-execute a finished backfill from failure, exactly as the UI's Backfills page does (its
    ``reexecutePartitionBackfill`` GraphQL mutation, strategy ``FROM_FAILURE``): a new backfill, tagged
    with its parent and root backfill, of the targeted partitions that were not materialised.
    Raises ``RuntimeError`` with the server's message when the mutation is refused (e.g. the backfill
    is still running, or nothing is left to re-execute)."""
    from dagster_graphql.schema import create_schema

    result = asyncio.run(
        create_schema().execute_async(_REEXECUTE, context_value=workspace,
                                      variable_values={"backfillId": backfill_id})
    )
    if result.errors:
        raise RuntimeError(f"re-executing backfill {backfill_id} failed: {result.errors[0]}")
    answer = result.data["reexecutePartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"re-executing backfill {backfill_id} refused: {answer.get('message')}")
    backfill = workspace.instance.get_backfill(answer["backfillId"])
    if backfill is None:
        raise RuntimeError(f"backfill {answer['backfillId']} is not on the instance")
    return backfill


def backfill_event_keys(backfill: PartitionBackfill) -> list[str]:
    """The event partition keys a backfill targets, sorted."""
    data = backfill.asset_backfill_data
    if data is None:
        return []
    keys = {
        k.partition_key
        for k in data.target_subset.iterate_asset_partitions()
        if k.partition_key and is_event_key(k.partition_key)
    }
    return sorted(keys)


def latest_week_backfill(instance: DagsterInstance, week: str) -> PartitionBackfill | None:
    """The most recent backfill of ISO week ``week`` (a re-execution included), or ``None``."""
    found = instance.get_backfills(filters=BulkActionsFilter(tags={WEEK_TAG: week}), limit=1)
    return found[0] if found else None


def backfill_runs(instance: DagsterInstance, backfill_id: str) -> list[DagsterRun]:
    """The runs the daemon created for a backfill, oldest first."""
    runs = instance.get_runs(filters=RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
    return sorted(runs, key=lambda run: instance.get_run_record_by_id(run.run_id).create_timestamp)


def run_label(run: DagsterRun) -> str:
    """An event run's partition key, or ``roll-up <week>`` for a week run."""
    key = run.tags.get(PARTITION_TAG, "")
    if key and not is_event_key(key):  # a week partition key: the Monday
        return f"roll-up {week_of_partition(key)}"
    return key or "run"


@dataclass
class BackfillProgress:
    """What a watcher has seen of one backfill: its status and the progress of each of its runs."""

    backfill_id: str
    status: BulkActionStatus = BulkActionStatus.REQUESTED
    runs: dict[str, RunProgress] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def seconds(self) -> float:
        """Wall time since the watcher started, seconds."""
        return time.time() - self.started


def _refresh_run(instance: DagsterInstance, progress: RunProgress, on_step: StepEcho | None,
                 on_finish: RunEcho | None) -> None:
    if progress.status in FINISHED:
        return
    run = instance.get_run_by_id(progress.run_id)
    if run is None:
        return
    progress.status = run.status
    if progress.started is None and run.status.value not in ("QUEUED", "NOT_STARTED"):
        progress.started = time.time()
    _poll_steps(instance, progress, on_step)
    if run.status in FINISHED:
        progress.finished = time.time()
        if on_finish is not None:
            on_finish(progress)


def watch_backfill(
    instance: DagsterInstance,
    backfill_id: str,
    on_step: StepEcho | None = None,
    on_finish: RunEcho | None = None,
    on_run: RunEcho | None = None,
    poll_s: float = 2.0,
    timeout_s: float | None = None,
) -> BackfillProgress:
    """Follow a backfill until it has finished and every one of its runs too: ``on_run`` for each run
    the daemon creates, ``on_step`` for each finished step (as
    :func:`~attribution_assets.orchestration.submit.wait_for_runs`), ``on_finish`` for each finished
    run. Raises ``TimeoutError`` after ``timeout_s`` seconds (the backfill goes on)."""
    progress = BackfillProgress(backfill_id)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        backfill = instance.get_backfill(backfill_id)
        if backfill is None:
            raise RuntimeError(f"backfill {backfill_id} vanished from the instance")
        progress.status = backfill.status
        for run in backfill_runs(instance, backfill_id):
            if run.run_id not in progress.runs:
                progress.runs[run.run_id] = RunProgress(run.run_id, run_label(run))
                if on_run is not None:
                    on_run(progress.runs[run.run_id])
        for run_progress in progress.runs.values():
            _refresh_run(instance, run_progress, on_step, on_finish)
        if backfill.status in TERMINAL and all(p.status in FINISHED for p in progress.runs.values()):
            return progress
        if deadline is not None and time.monotonic() > deadline:
            status = backfill.status.value
            raise TimeoutError(f"backfill {backfill_id} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def step_seconds(instance: DagsterInstance, run_ids: Sequence[str]) -> dict[str, list[float]]:
    """Duration of every successful step of the runs, seconds, by step key (from the instance's event
    log: each step's ``STEP_START`` to its ``STEP_SUCCESS``)."""
    from dagster import DagsterEventType

    durations: dict[str, list[float]] = {}
    for run_id in run_ids:
        starts = {
            r.event_log_entry.step_key: r.event_log_entry.timestamp
            for r in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records
        }
        for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_SUCCESS).records:
            step = record.event_log_entry.step_key
            if step in starts:
                durations.setdefault(step, []).append(record.event_log_entry.timestamp - starts[step])
    return durations
