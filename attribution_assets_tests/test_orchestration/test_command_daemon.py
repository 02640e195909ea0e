"""The daemon commands start is shared: real commands in real processes on one ``DAGSTER_HOME``.

Each "command" is a child interpreter that prepares the instance as ``attribution run`` does
(``cli.ensure_instance_home``), enters :func:`~attribution_assets.orchestration.daemon.daemon`,
prints its lease and waits for a line on stdin before it leaves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    instance_for_test,
)
from dagster._core.storage.tags import GRPC_INFO_TAG

from attribution_assets.atomic import process_alive
from attribution_assets.orchestration.daemon import STATE_FILE, daemon, fail_orphaned_runs
from attribution_assets.paths import REPO_ROOT
from attribution_assets_tests.processes import kill_when_ready

pytestmark = pytest.mark.slow

COMMAND = """
import sys
from dagster import DagsterInstance
from attribution_assets.cli import ensure_instance_home
from attribution_assets.orchestration.daemon import daemon
ensure_instance_home()
with DagsterInstance.get() as instance, daemon(instance) as lease:
    print(f"{lease.pid} {int(lease.started)}", flush=True)
    sys.stdin.readline()
"""


def _command(home: Path) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-c", COMMAND], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)


def _lease(command: subprocess.Popen) -> tuple[int, bool]:
    line = command.stdout.readline()
    assert line, command.stderr.read()
    pid, started = line.split()
    return int(pid), started == "1"


def _leave(command: subprocess.Popen) -> None:
    command.stdin.write("\n")
    command.stdin.flush()
    assert command.wait(timeout=60) == 0, command.stderr.read()
    for pipe in (command.stdin, command.stdout, command.stderr):
        pipe.close()


def _gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not process_alive(pid)


def test_two_commands_starting_together_on_a_fresh_home_share_one_daemon_until_the_last_leaves(
    tmp_path: Path,
) -> None:
    """Two commands on an empty DAGSTER_HOME used to start two daemons, which both created its storage;
    the instance then failed to load ('more than one head'). The first to finish stopped the daemon
    under the other, whose runs died with it."""
    home = tmp_path / "home"
    first, second = _command(home), _command(home)
    (pid_a, started_a), (pid_b, started_b) = _lease(first), _lease(second)
    assert pid_a == pid_b and started_a != started_b, "one daemon, started by one of them"
    state = json.loads((home / STATE_FILE).read_text())
    assert state == {"pid": pid_a, "users": sorted([first.pid, second.pid])}
    _leave(first if started_a else second)  # the one that started it leaves first
    time.sleep(1)
    assert process_alive(pid_a), "the daemon serves the command still running"
    _leave(second if started_a else first)
    assert _gone(pid_a), "the last command stops it"
    assert not (home / STATE_FILE).exists()
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs() == [] and instance.get_daemon_heartbeats() == {}, "the instance loads"


def test_a_killed_commands_daemon_is_adopted_and_stopped_by_the_next_command(tmp_path: Path) -> None:
    """A command killed with SIGKILL left its daemon running for ever; the next one used it and left it."""
    home = tmp_path / "home"
    killed = _command(home)
    line = kill_when_ready(killed)
    killed.stdin.close()
    pid = int(line.split()[0])
    assert process_alive(pid), "the daemon outlives its command"
    with DagsterInstance.from_config(str(home)) as instance:
        with daemon(instance) as lease:
            assert (lease.pid, lease.started, lease.adopted) == (pid, False, True)
            assert json.loads((home / STATE_FILE).read_text())["users"] == [os.getpid()], "the dead dropped"
        assert _gone(pid)
        with daemon(instance) as lease:  # the next one starts a daemon of its own
            assert lease.started and lease.pid != pid
            fresh = lease.pid
        assert _gone(fresh)


def test_a_signal_during_the_daemons_stop_waits_until_the_stop_is_done() -> None:
    """A second Ctrl-C while a command stopped its daemon interrupted the stop."""
    import signal

    from attribution_assets.orchestration.shutdown import signals_deferred

    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            assert received == [], "held while the block runs"
        time.sleep(0.2)
        assert received == [signal.SIGINT], "delivered once it ends"
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_stop_while_the_daemon_starts_stops_the_daemon_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C between starting the daemon and recording it left the daemon running, unrecorded: no
    later command adopted it."""
    import signal

    from attribution_assets.cli import ensure_instance_home
    from attribution_assets.orchestration.shutdown import exit_on_signal

    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_instance_home()
    started: list[int] = []

    class SignalledOnStart(subprocess.Popen):
        """The daemon's process, with a Ctrl-C the moment it has started."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self.pid)
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(subprocess, "Popen", SignalledOnStart)
    try:
        with pytest.raises(SystemExit) as stopped, exit_on_signal(echo=lambda line: None), \
                DagsterInstance.get() as instance, daemon(instance):
            pytest.fail("the block ran after the stop")
        assert stopped.value.code == 128 + signal.SIGINT
        assert len(started) == 1 and _gone(started[0]), "the daemon it started is stopped"
        assert not (home / STATE_FILE).exists()
    finally:
        for pid in started:
            if process_alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_only_runs_whose_process_on_this_machine_is_gone_are_failed_as_orphans() -> None:
    """A run whose process lives, or that runs on another machine, is left alone (the crash itself:
    ``test_crash_rerun.py``)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    with instance_for_test() as instance:
        runs = {}
        for name, pid, host in (("live", os.getpid(), "localhost"), ("gone", gone.pid, "localhost"),
                                ("elsewhere", gone.pid, "worker-2")):
            run = instance.add_run(DagsterRun(job_name="attribute_event", status=DagsterRunStatus.STARTING,
                                              tags={GRPC_INFO_TAG: json.dumps({"host": host, "port": 4266})}))
            started = DagsterEvent(DagsterEventType.RUN_START.value, "attribute_event", pid=pid)
            instance.report_dagster_event(started, run.run_id)  # as the run process reports its start
            runs[name] = run.run_id
        assert fail_orphaned_runs(instance) == [runs["gone"]]
        statuses = {name: instance.get_run_by_id(run_id).status for name, run_id in runs.items()}
        assert statuses == {"live": DagsterRunStatus.STARTED, "gone": DagsterRunStatus.FAILURE,
                            "elsewhere": DagsterRunStatus.STARTED}
