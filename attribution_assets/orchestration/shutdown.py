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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.storage.tags import BACKFILL_ID_TAG, GRPC_INFO_TAG

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


COMMAND_TAG = "attribution/command"
"""Tag of every run and backfill one command submits, valued with the command's id: a stop ends that
command's runs only (two commands on one instance often share their run config)."""


@dataclass
class SubmittedRuns:
    """The runs a command submitted, to be terminated if it is asked to stop: those tracked with
    :meth:`track`, every run carrying the command's :attr:`tags` (give them to each run and backfill
    it submits), and the runs of the backfills tracked with :meth:`track_backfill` (a re-executed
    backfill's runs carry the tags of the backfill it re-executes)."""

    instance: DagsterInstance
    command_id: str = field(default_factory=lambda: uuid4().hex)
    tracked: list[str] = field(default_factory=list)
    backfill_ids: list[str] = field(default_factory=list)

    @property
    def tags(self) -> dict[str, str]:
        """The tags that mark a run or backfill as this command's."""
        return {COMMAND_TAG: self.command_id}

    def track(self, run: DagsterRun) -> DagsterRun:
        """Remember ``run`` (as returned by ``submit_run``) and return it unchanged."""
        self.tracked.append(run.run_id)
        return run

    def track_backfill(self, backfill: PartitionBackfill) -> PartitionBackfill:
        """Remember ``backfill`` (cancelled on a stop, with its runs) and return it unchanged."""
        self.backfill_ids.append(backfill.backfill_id)
        return backfill

    def run_ids(self) -> list[str]:
        """The tracked runs, then the unfinished runs tagged as this command's or of its backfills."""
        found = list(self.tracked)
        filters = [RunsFilter(tags=self.tags)]
        filters += [RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}) for backfill_id in self.backfill_ids]
        for runs_filter in filters:
            found += [run.run_id for run in reversed(self.instance.get_runs(runs_filter))
                      if run.status not in FINISHED and run.run_id not in found]
        return found

    def cancel_backfills(self) -> None:
        """Ask the daemon to cancel this command's unfinished backfills, as the UI's "Cancel backfill"
        does (no further run is created; its runs are terminated)."""
        for backfill_id in self.backfill_ids:
            backfill = self.instance.get_backfill(backfill_id)
            if backfill is not None and backfill.status == BulkActionStatus.REQUESTED:
                self.instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELING))

    def mark_backfills_canceled(self) -> None:
        """Mark this command's cancelling backfills whose runs have all finished as canceled, as the
        daemon does on its next backfill iteration: the command may stop the daemon before that
        iteration, and a backfill left cancelling for ever cannot be re-executed from failure."""
        for backfill_id in self.backfill_ids:
            backfill = self.instance.get_backfill(backfill_id)
            if backfill is None or backfill.status != BulkActionStatus.CANCELING:
                continue
            runs = self.instance.get_runs(RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
            if all(run.status in FINISHED for run in runs):
                self.instance.update_backfill(
                    backfill.with_status(BulkActionStatus.CANCELED).with_end_timestamp(time.time()))


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

    Runs created but never submitted (a stop between the two) are marked canceled; queued runs leave the
    queue; started ones get a termination request. After ``kill_after_s`` seconds
    the run process of each run still going (when it is on this machine) is killed with its children,
    and the run is marked canceled. Runs on other machines are left to their run launcher and to the
    instance's run monitoring (``cancel_timeout_seconds``).
    """
    started = time.monotonic()
    for run in _unfinished(instance, run_ids):
        if run.status == DagsterRunStatus.NOT_STARTED:  # created, never submitted: no launcher knows it
            instance.report_run_canceled(run, "canceled before it was submitted")
            continue
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


def _raise_shutdown(signum: int, _frame: object) -> None:
    raise ShutdownRequested(signum)


@contextmanager
def signal_handlers(handler: Callable[[int, object], None]) -> Iterator[None]:
    """Within the block SIGTERM and SIGINT call ``handler``, after it the handlers from before (main
    thread only, where signals can be handled: elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


@contextmanager
def _shutdown_raised() -> Iterator[None]:
    """Within the block SIGTERM and SIGINT raise :class:`ShutdownRequested` in the main thread. One that
    lands in a garbage-collector callback (JAX runs one on every full collection), where Python
    swallows it, is signalled again (:func:`~attribution_assets.stop_requests.redeliver_swallowed_stops`):
    a Ctrl-C while the command loaded the code location was lost that way and the command ran on."""
    redeliver_swallowed_stops(ShutdownRequested)  # once per process; harmless where no handler raises it
    with signal_handlers(_raise_shutdown):
        yield


@contextmanager
def cancel_runs_on_signal(
    instance: DagsterInstance,
    grace_s: float = SHUTDOWN_GRACE_S,
    echo=print,
) -> Iterator[SubmittedRuns]:
    """Within the block, SIGTERM and SIGINT cancel the command's backfills and terminate its runs (the
    yielded :class:`SubmittedRuns`: tracked ones, those carrying its tags, and its backfills' runs) with
    :func:`terminate_runs`, then raise ``SystemExit(128 + signum)``.

    Outside the main thread (where signals cannot be handled) the block runs without handlers. The
    previous handlers are restored at the end; a second signal during the termination is ignored, so
    the termination finishes (it is bounded by ``grace_s``).
    """
    submitted = SubmittedRuns(instance)
    with _shutdown_raised():
        try:
            yield submitted
        except ShutdownRequested as stop:
            for handled in HANDLED_SIGNALS:
                signal.signal(handled, signal.SIG_IGN)
            submitted.cancel_backfills()
            run_ids = submitted.run_ids()
            echo(f"{stop}: terminating {len(run_ids)} submitted runs (at most {grace_s:.0f} s)")
            statuses = terminate_runs(instance, run_ids, grace_s=grace_s)
            submitted.mark_backfills_canceled()
            counts = {s.value: list(statuses.values()).count(s) for s in set(statuses.values())}
            echo(f"runs after termination: {counts}")
            raise SystemExit(128 + stop.signum) from None


@contextmanager
def exit_on_signal(echo=print) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`ShutdownRequested` in the main thread, so the
    blocks inside it clean up (a daemon lease, a code server), then ``SystemExit(128 + signum)``.

    It guards the moments around :func:`cancel_runs_on_signal`: while a command starts its daemon and
    loads the code location, Ctrl-C printed a traceback and SIGTERM ended the process before its
    daemon was stopped. Outside the main thread the block runs without handlers.
    """
    with _shutdown_raised():
        try:
            yield
        except ShutdownRequested as stop:
            echo(f"{stop}: stopped (no run of this command was left going)")
            raise SystemExit(128 + stop.signum) from None


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive in the block are held and raised again once it ends (main thread;
    elsewhere nothing changes): a second Ctrl-C while a command stopped its daemon interrupted the
    stop."""
    held: list[int] = []
    try:
        with signal_handlers(lambda signum, _frame: held.append(signum)):
            yield
    finally:
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)
