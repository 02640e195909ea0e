"""The daemon a command starts when none serves the instance, shared by every command that needs it.

``attribution run``, ``demo``, ``backfill`` and ``serve --with-daemon`` need a daemon to dequeue and
launch their runs. A deployment runs its own ``dagster-daemon``; without one, the first command starts
``dagster-daemon run`` and records it in ``$DAGSTER_HOME/command_daemon.json`` with the commands
using it. A command that starts while it runs joins it instead of starting a second daemon (two
daemons on one fresh instance migrated its SQLite storage twice and left it unloadable), and the last
command to leave stops it (the first to finish stopped it under the others, killing their runs, whose
processes are in the daemon's process group). A command killed with SIGKILL leaves its entry behind:
the next command drops it, adopts the daemon, and stops it when it leaves. A command that starts a
daemon first marks failed the runs a daemon that is gone left going, whose processes have ended
(:func:`fail_orphaned_runs`). Every decision is taken under a file lock in ``DAGSTER_HOME``, which
also serialises the creation of a fresh instance's storage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from filelock import FileLock

from attribution_assets.atomic import atomic_path, process_alive
from attribution_assets.orchestration.failures import instance_database_unreachable
from attribution_assets.orchestration.shutdown import run_worker_pid, signals_deferred
from attribution_assets.orchestration.workspace import workspace_file

DAEMON_HEARTBEAT_S = 60.0
"""A daemon whose last heartbeat is younger than this (seconds) counts as running."""
STATE_FILE = "command_daemon.json"
"""The command-started daemon's process id and the commands using it, in ``DAGSTER_HOME``."""
LOCK_FILE = "command_daemon.lock"
STOP_TIMEOUT_S = 5.0
"""Seconds from SIGTERM to the daemon's process group until SIGKILL."""
DAEMON_MODULE = "dagster._daemon"

_children: dict[int, subprocess.Popen] = {}
"""Daemons this process started, by process id, so that it reaps the one it stops."""


@dataclass(frozen=True)
class DaemonLease:
    """A command's use of a command-started daemon: its process id, whether this command started it
    (else it joined one another command started), and whether no live command was using it when it
    joined (a stopped command's daemon, which this command now stops when it leaves last)."""

    pid: int
    started: bool
    adopted: bool = False
    orphans_failed: int = 0
    """Runs a daemon that is gone left going, marked failed as this command started its daemon."""


def daemon_running(instance: DagsterInstance) -> bool:
    """Whether a daemon has sent a heartbeat to this instance within :data:`DAEMON_HEARTBEAT_S`."""
    heartbeats = instance.get_daemon_heartbeats()
    now = time.time()
    return any(now - beat.timestamp < DAEMON_HEARTBEAT_S for beat in heartbeats.values())


def _is_daemon(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) ``dagster-daemon`` process; where ``/proc`` cannot
    say, whether it exists."""
    if not pid or not process_alive(pid):
        return False
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return True
    return state != "Z" and DAEMON_MODULE in command


def _read_state(home: Path) -> tuple[int, list[int]]:
    """The recorded daemon's process id (0 when none) and the live commands using it."""
    try:
        state = json.loads((home / STATE_FILE).read_text())
        pid, users = int(state["pid"]), [int(user) for user in state["users"]]
    except (OSError, ValueError, KeyError, TypeError):
        return 0, []
    return pid, [user for user in users if process_alive(user)]


def _write_state(home: Path, pid: int, users: list[int]) -> None:
    with atomic_path(home / STATE_FILE) as tmp:
        tmp.write_text(json.dumps({"pid": pid, "users": sorted(set(users))}))


def _start(instance: DagsterInstance, home: Path, log_path: Path) -> int:
    command = [sys.executable, "-m", DAEMON_MODULE, "run", "-w", str(workspace_file(instance)),
               "--log-level", "warning"]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    _children[process.pid] = process
    return process.pid


def _stop(pid: int) -> None:
    """SIGTERM to the daemon's process group, SIGKILL after :data:`STOP_TIMEOUT_S`; reaps it when this
    process started it. Nothing for no daemon (``pid`` 0) or one that has exited."""
    child = _children.pop(pid, None)
    if not _is_daemon(pid):
        if child is not None:
            child.poll()
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return
        if child is None and not _is_daemon(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    if child is not None:
        child.wait()


def fail_orphaned_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed (canceled, when they were being canceled) the runs left going by a daemon that is
    gone whose run process on this machine has ended; returns their ids. Call it only when no daemon
    serves the instance.

    A crash, or a kill of a command daemon's process group, ends the daemon, the code server that
    launched the runs and the run processes together. Nothing then reports the runs' end: the run
    launcher cannot check a run worker's health, so run monitoring leaves them STARTED until
    ``max_runtime_seconds`` (6 h), and each holds its event's one-run-per-partition slot, so the
    event's re-run waited in the queue as long."""
    failed = []
    statuses = [DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    for run in instance.get_runs(RunsFilter(statuses=statuses)):
        pid = run_worker_pid(instance, run)
        if pid is None or process_alive(pid):
            continue
        reason = (f"run process {pid} is gone, with the daemon that launched it (a crash or a kill); "
                  "found by the command that started the next daemon")
        if run.status == DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, reason)
        else:
            instance.report_run_failed(run, reason)
        failed.append(run.run_id)
    return failed


class InstanceDatabaseUnreachable(RuntimeError):
    """The instance's database did not answer (a PostgreSQL server down, or a wrong host or port)."""


def initialise_instance(home: Path) -> None:
    """Create the storage of the instance in ``home`` under the lock, so two commands starting on a
    fresh ``DAGSTER_HOME`` do not both create its SQLite databases. Raises
    :class:`InstanceDatabaseUnreachable` naming the instance file, the ``DAGSTER_PG_*`` address of the
    production template and the storage's last word when the database does not answer."""
    try:
        with FileLock(home / LOCK_FILE), DagsterInstance.from_config(str(home)) as instance:
            instance.get_runs(limit=1)
            instance.get_daemon_heartbeats()
            instance.all_instigator_state()
    except Exception as error:  # the storage's own errors: only an unreachable database is reworded
        if not instance_database_unreachable(error):
            raise
        address = ", ".join(f"{name}={os.environ.get(name, '(unset)')}"
                            for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB"))
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise InstanceDatabaseUnreachable(
            f"the instance database of {home / 'dagster.yaml'} cannot be reached ({address}): "
            f"{type(error).__name__}: {lines[-1] if lines else ''}"
        ) from error


def daemon_in_use(lease: DaemonLease | None, instance: DagsterInstance) -> str:
    """Which daemon executes a command's runs, for people (``lease``: what :func:`daemon` yielded)."""
    log = f"log: {instance.root_directory}/daemon.log"
    if lease is None:
        return "runs executed by the instance's running daemon"
    if lease.started:
        orphans = (f"; marked failed {lease.orphans_failed} run(s) whose daemon and run process are gone "
                   "(a crash or a kill)" if lease.orphans_failed else "")
        return f"daemon started for this command ({log}); the last command using it stops it{orphans}"
    if lease.adopted:
        return (f"runs executed by the daemon a stopped command left running (pid {lease.pid}; {log}); "
                "this command stops it when it finishes, unless another uses it")
    return f"runs executed by the daemon another command started (pid {lease.pid}; {log})"


@contextmanager
def daemon(instance: DagsterInstance, log_path: Path | None = None) -> Iterator[DaemonLease | None]:
    """Make sure a daemon serves ``instance`` while the block runs.

    Yields ``None`` when a daemon that no command started serves it (a deployment's ``dagster-daemon``:
    nothing is started or stopped). Otherwise the block holds a :class:`DaemonLease` on the
    command-started daemon: the one recorded in ``DAGSTER_HOME`` when it is alive, else a new
    ``dagster-daemon run`` on the code location (stdout and stderr appended to ``log_path``, default
    ``$DAGSTER_HOME/daemon.log``). The last command to leave stops it (SIGTERM to its process group)
    and wipes its heartbeats, so the next command does not mistake it for a running daemon.
    """
    home = Path(instance.root_directory)
    lock = FileLock(home / LOCK_FILE)
    with ExitStack() as leaving:
        with signals_deferred():  # a stop between starting the daemon and recording it left it running
            lease = _join_or_start(instance, home, lock, log_path or home / "daemon.log")
            if lease is not None:
                leaving.callback(_leave, instance, home, lock)
        yield lease  # a stop held above was raised before the block, and the lease is left as after it


def _join_or_start(
    instance: DagsterInstance, home: Path, lock: FileLock, log_path: Path,
) -> DaemonLease | None:
    """The lease on the recorded command-started daemon, or on a new one, with this process recorded as
    a user; ``None`` when a deployment's daemon serves the instance."""
    with lock:
        pid, users = _read_state(home)
        if not _is_daemon(pid):
            if pid:
                instance.wipe_daemon_heartbeats()  # a dead command-started daemon's
            if daemon_running(instance):
                return None
            orphans = fail_orphaned_runs(instance)
            pid, users = _start(instance, home, log_path), []
            lease = DaemonLease(pid, started=True, orphans_failed=len(orphans))
        else:
            lease = DaemonLease(pid, started=False, adopted=not users)
        _write_state(home, pid, [*users, os.getpid()])
        return lease


def _leave(instance: DagsterInstance, home: Path, lock: FileLock) -> None:
    """Drop this process from the daemon's users; the last one stops the daemon and wipes its
    heartbeats. Signals are held meanwhile (a second Ctrl-C interrupted the stop)."""
    with signals_deferred(), lock:  # the recorded daemon may be another, started after this one died
        pid, users = _read_state(home)
        others = [user for user in users if user != os.getpid()]
        if others:
            _write_state(home, pid, others)
        else:
            _stop(pid)
            (home / STATE_FILE).unlink(missing_ok=True)
            instance.wipe_daemon_heartbeats()
