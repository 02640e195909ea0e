"""The code location as the instance sees it: the workspace that loads ``attribution_assets`` (a code
server process, as the webserver and the daemon load it, or the calling process for the HTTP service),
and the daemon.

Runs submitted here are the same objects the UI creates: they carry the code location's origin, go
through the instance's run coordinator (the queue and its limits) and are launched by its run launcher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.code_location import CodeLocation
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import (
    InProcessWorkspaceLoadTarget,
    WorkspaceFileTarget,
    WorkspaceLoadTarget,
)

from attribution_assets.atomic import atomic_path
from attribution_assets.paths import REPO_ROOT

LOCATION_NAME = "attribution_assets"
"""The code location's name (``workspace.yaml``, ``pyproject.toml``)."""
DEFINITIONS_MODULE = "attribution_assets.definitions"
DAEMON_HEARTBEAT_S = 60.0
"""A daemon whose last heartbeat is younger than this (seconds) counts as running."""


def workspace_file(instance: DagsterInstance) -> Path:
    """``$DAGSTER_HOME/workspace.yaml``: the code location as the repository's ``workspace.yaml``
    declares it (module, location name), with the working directory spelled out; written when missing
    or different, so the CLI, the daemon and the webserver load the same location."""
    path = Path(instance.root_directory) / "workspace.yaml"
    text = (
        "load_from:\n"
        "  - python_module:\n"
        f"      module_name: {DEFINITIONS_MODULE}\n"
        f"      location_name: {LOCATION_NAME}\n"
        f"      working_directory: {REPO_ROOT}\n"
    )
    if not path.exists() or path.read_text() != text:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return path


@contextmanager
def open_workspace(instance: DagsterInstance, in_process: bool = False) -> Iterator[WorkspaceRequestContext]:
    """A request context on the code location, loaded in a code-server process like the webserver's,
    or, with ``in_process``, in this process (for a long-lived process that imports the package anyway:
    no second interpreter loads it). Either way the location has the same name and module, so the
    runs submitted through it are launched by the daemon from its own code server."""
    path = workspace_file(instance)  # the daemon's and the webserver's workspace, written either way
    if in_process:
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(executable_path=sys.executable, module_name=DEFINITIONS_MODULE,
                                 working_directory=str(REPO_ROOT)),
            location_name=LOCATION_NAME,
        )
        target: WorkspaceLoadTarget = InProcessWorkspaceLoadTarget(origin)
    else:
        target = WorkspaceFileTarget(paths=[str(path)])
    with WorkspaceProcessContext(instance, target, read_only=False) as process_context:
        yield process_context.create_request_context()


def code_location(workspace: WorkspaceRequestContext) -> CodeLocation:
    """The ``attribution_assets`` code location; raises with the load error when it failed to load."""
    if workspace.has_code_location_error(LOCATION_NAME):
        error = workspace.get_code_location_error(LOCATION_NAME)
        detail = error.to_string() if error else "no error recorded"
        raise RuntimeError(f"code location {LOCATION_NAME} did not load: {detail}")
    if not workspace.has_code_location(LOCATION_NAME):
        raise RuntimeError(f"code location {LOCATION_NAME} is not in the workspace")
    return workspace.get_code_location(LOCATION_NAME)


def daemon_running(instance: DagsterInstance) -> bool:
    """Whether a daemon has sent a heartbeat to this instance within :data:`DAEMON_HEARTBEAT_S`."""
    heartbeats = instance.get_daemon_heartbeats()
    now = time.time()
    return any(now - beat.timestamp < DAEMON_HEARTBEAT_S for beat in heartbeats.values())


@contextmanager
def daemon(instance: DagsterInstance, log_path: Path | None = None) -> Iterator[subprocess.Popen | None]:
    """Make sure a daemon serves ``instance`` while the block runs.

    When one is already running (a deployment's own ``dagster-daemon``), nothing is started and
    ``None`` is yielded. Otherwise ``dagster-daemon run`` is started on the code location (stdout and
    stderr to ``log_path``, default ``$DAGSTER_HOME/daemon.log``) and stopped with SIGTERM at the end;
    the queued runs it launched keep their own processes and finish. Its heartbeats are then wiped,
    so the next command does not mistake it for a running daemon.
    """
    if daemon_running(instance):
        yield None
        return
    home = Path(instance.root_directory)
    log_path = log_path or home / "daemon.log"
    command = [
        sys.executable, "-m", "dagster._daemon", "run",
        "-w", str(workspace_file(instance)),
        "--log-level", "warning",
    ]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    try:
        with logged_process(command, log_path, env, stop_timeout_s=5.0) as process:
            yield process
    finally:
        instance.wipe_daemon_heartbeats()


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
