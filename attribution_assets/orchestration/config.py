"""Run config that points a run at an archive, an output root and analysis settings.

The run process loads the code location afresh, so what a command line chooses travels in the run's
config (shown in the UI's run view), not in the submitting process's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

INTERMEDIATE_DIR = "intermediate"
"""Folder under the output root where the IO manager keeps per-partition intermediates."""


def resources_config(
    archive: str | Path,
    output: str | Path,
    settings: Mapping[str, Any] | None = None,
    live: bool | None = None,
) -> dict[str, Any]:
    """Run config for the code location's resources: the archive root, the output root (and its
    intermediates), the ``settings`` fields given (``AnalysisSettings``), and, when ``live`` is not
    ``None``, the live switch of both Earthdata and the CDS."""
    resources: dict[str, Any] = {
        "archive": {"config": {"root": str(archive)}},
        "store": {"config": {"root": str(output)}},
        "io_manager": {"config": {"root": str(Path(output) / INTERMEDIATE_DIR)}},
    }
    if settings:
        resources["settings"] = {"config": dict(settings)}
    if live is not None:
        resources["earthdata"] = {"config": {"live": live}}
        resources["cds"] = {"config": {"live": live}}
    return {"resources": resources}
