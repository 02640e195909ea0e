"""The code location as the instance sees it: the workspace that loads ``attribution_assets`` (a code
server process, as the webserver and the daemon load it, or the calling process for the HTTP service).

Runs submitted here are the same objects the UI creates: they carry the code location's origin, go
through the instance's run coordinator (the queue and its limits) and are launched by its run launcher.
"""

from __future__ import annotations

import sys
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
