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
from dagster import DagsterInstance

from attribution_assets.atomic import process_alive
from attribution_assets.orchestration.daemon import STATE_FILE, daemon
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
