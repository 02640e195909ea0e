"""Output shared by the benchmark scripts: the JSON results, to a file or to standard output."""

from __future__ import annotations

import json
from pathlib import Path


def write_results(results: dict, out: str | Path | None) -> None:
    """Write ``results`` as indented JSON to ``out``, or print them when ``out`` is None."""
    text = json.dumps(results, indent=2)
    if out is None:
        print(text)
    else:
        Path(out).write_text(text)
