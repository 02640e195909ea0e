"""Graceful shutdown of a command that submitted runs: SIGTERM or SIGINT ends its runs, then the command.

``attribution run`` (``demo``, ``backfill``) waits on runs that the daemon executes in other processes.
On SIGTERM (a container or pod asked to stop, ``kill``) or SIGINT (Ctrl-C) inside
:func:`cancel_runs_on_signal`, every run the command submitted that has not finished is terminated
through the instance, as the UI's "Terminate" does: a queued run is removed from the queue
(``run_coordinator.cancel_run``), a started one gets the run launcher's termination request, which
interrupts its run process between two Python operations. A run that has not stopped after
:data:`KILL_AFTER_S` seconds (a step blocked in a call that never returns to Python) has its run
process killed, when that process is on this machine, and is marked canceled. Every
output is written to a temporary file and renamed (:mod:`attribution_assets.atomic`), so a run
stopped at any point leaves each output either complete or absent. The command then exits with
``128 + signal number`` (143 for SIGTERM, 130 for SIGINT).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.storage.tags import GRPC_INFO_TAG

from attribution_assets.stop_requests import redeliver_swallowed_stops

SHUTDOWN_GRACE_S = 10.0
"""Seconds from the signal until every run of the command has ended (canceled or failed)."""
KILL_AFTER_S = 6.0
"""Seconds a run may take to honour the termination request before its process is killed."""
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


class ShutdownRequested(BaseException):
    """Raised in the main thread by the signal handler of :func:`cancel_runs_on_signal`."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


@dataclass
class SubmittedRuns:
    """The runs a command submitted, to be terminated if it is asked to stop: those tracked with
    :meth:`track`, and every run created since ``since`` whose run config is ``run_config`` (each run
    a command submits carries the same archive, output and settings)."""

    instance: DagsterInstance
    run_config: Mapping[str, Any] | None = None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    tracked: list[str] = field(default_factory=list)

    def track(self, run: DagsterRun) -> DagsterRun:
        """Remember ``run`` (as returned by ``submit_run``) and return it unchanged."""
        self.tracked.append(run.run_id)
        return run

    def run_ids(self) -> list[str]:
        """The tracked runs, then the unfinished runs created since ``since`` with ``run_config``."""
        found = list(self.tracked)
        if self.run_config is not None:
            recent = self.instance.get_runs(RunsFilter(created_after=self.since - timedelta(seconds=1)))
            found += [
                run.run_id for run in reversed(recent)
                if run.run_config == self.run_config and run.status not in FINISHED
                and run.run_id not in found
            ]
        return found


def run_worker_pid(instance: DagsterInstance, run: DagsterRun) -> int | None:
    """The id of the process executing ``run`` when it runs on this machine (the default run
    launcher's run process, which reports ``RUN_START``); ``None`` otherwise."""
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return None
    grpc_info = json.loads(run.tags.get(GRPC_INFO_TAG, "{}"))
    if (grpc_info.get("host") or "") not in LOCAL_HOSTS:
        return None
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START).records
    pids = [r.event_log_entry.dagster_event.pid for r in records if r.event_log_entry.dagster_event]
    return next((pid for pid in reversed(pids) if pid), None)


def _children(pid: int) -> list[int]:
    """Ids of the processes whose parent is ``pid`` (Linux ``/proc``; empty elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def kill_process_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (step processes of a multiprocess executor)."""
    pending, tree = [pid], []
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(_children(current))
    for member in tree:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)


def _unfinished(instance: DagsterInstance, run_ids: Sequence[str]) -> list[DagsterRun]:
    runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
    return [run for run in runs if run is not None and run.status not in FINISHED]


def terminate_runs(
    instance: DagsterInstance,
    run_ids: Sequence[str],
    grace_s: float = SHUTDOWN_GRACE_S,
    kill_after_s: float = KILL_AFTER_S,
    poll_s: float = 0.2,
) -> dict[str, DagsterRunStatus]:
    """End the unfinished runs among ``run_ids`` within ``grace_s`` seconds; returns each run's status.

    Queued runs leave the queue; started ones get a termination request. After ``kill_after_s`` seconds
    the run process of each run still going (when it is on this machine) is killed with its children,
    and the run is marked canceled. Runs on other machines are left to their run launcher and to the
    instance's run monitoring (``cancel_timeout_seconds``).
    """
    started = time.monotonic()
    for run in _unfinished(instance, run_ids):
        try:
            instance.run_coordinator.cancel_run(run.run_id)
        except Exception as error:  # a run that finished meanwhile, an unreachable code server
            instance.report_engine_event(f"termination request failed: {error}", run)
    while _unfinished(instance, run_ids) and time.monotonic() - started < kill_after_s:
        time.sleep(poll_s)
    for run in _unfinished(instance, run_ids):
        pid = run_worker_pid(instance, run)
        if pid is None:
            continue
        kill_process_tree(pid)
        instance.report_run_canceled(
            run, f"run process {pid} killed: it had not stopped {kill_after_s:.0f} s after the termination "
            "request (every output is written atomically, so none is half-written)"
        )
    while _unfinished(instance, run_ids) and time.monotonic() - started < grace_s:
        time.sleep(poll_s)
    return {run_id: instance.get_run_by_id(run_id).status for run_id in run_ids}


@contextmanager
def cancel_runs_on_signal(
    instance: DagsterInstance,
    run_config: Mapping[str, Any] | None = None,
    grace_s: float = SHUTDOWN_GRACE_S,
    echo=print,
) -> Iterator[SubmittedRuns]:
    """Within the block, SIGTERM and SIGINT terminate the command's runs (the yielded
    :class:`SubmittedRuns`: tracked ones, and those created in the block with ``run_config``) with
    :func:`terminate_runs`, then raise ``SystemExit(128 + signum)``.

    Outside the main thread (where signals cannot be handled) the block runs without handlers. The
    previous handlers are restored at the end; a second signal during the termination is ignored, so
    the termination finishes (it is bounded by ``grace_s``).
    """
    submitted = SubmittedRuns(instance, run_config)
    if threading.current_thread() is not threading.main_thread():
        yield submitted
        return

    def on_signal(signum: int, _frame: object) -> None:
        raise ShutdownRequested(signum)

    redeliver_swallowed_stops(ShutdownRequested)
    previous = {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, on_signal)
    try:
        yield submitted
    except ShutdownRequested as stop:
        for handled in HANDLED_SIGNALS:
            signal.signal(handled, signal.SIG_IGN)
        run_ids = submitted.run_ids()
        echo(f"{stop}: terminating {len(run_ids)} submitted runs (at most {grace_s:.0f} s)")
        statuses = terminate_runs(instance, run_ids, grace_s=grace_s)
        counts = {s.value: list(statuses.values()).count(s) for s in set(statuses.values())}
        echo(f"runs after termination: {counts}")
        raise SystemExit(128 + stop.signum) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
