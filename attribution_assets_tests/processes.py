"""Real child processes in tests: wait until one reports that it is mid-way, then SIGKILL it."""

from __future__ import annotations

import os
import signal
import subprocess

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
