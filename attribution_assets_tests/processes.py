"""Real child processes in tests: wait until one reports that it is mid-way, then SIGKILL it; run a server
in its own session for the duration of a block."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from attribution_assets.atomic import process_alive


def kill_when_ready(child: subprocess.Popen) -> str:
    """Read the line ``child`` prints when it is in the middle of its work, SIGKILL it and reap it;
    return that line. Fails unless the process printed a line and then died of the SIGKILL."""
    try:
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else "the child printed nothing"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    assert not process_alive(child.pid)
    return line


@contextmanager
def logged_process(
    command: list[str], log_path: Path, env: dict[str, str], stop_timeout_s: float
) -> Iterator[subprocess.Popen]:
    """``command`` running in its own session while the block runs, its stdout and stderr appended to
    ``log_path``; at the end its process group is stopped (:func:`stop_process_group`: SIGTERM, then
    SIGKILL after ``stop_timeout_s`` seconds)."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    try:
        yield process
    finally:
        stop_process_group(process, timeout_s=stop_timeout_s)


def stop_process_group(
    process: subprocess.Popen, timeout_s: float, first_signal: int = signal.SIGTERM
) -> None:
    """Stop a process started in its own session: ``first_signal`` to the process (its whole group for
    SIGTERM), then SIGKILL to the group after ``timeout_s`` seconds; nothing when it has exited."""
    if process.poll() is not None:
        return
    if first_signal == signal.SIGTERM:
        os.killpg(process.pid, first_signal)
    else:
        os.kill(process.pid, first_signal)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
