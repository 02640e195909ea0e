"""The example notebook runs end to end with the event API and shows what it promises."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from attribution_assets.paths import REPO_ROOT

NOTEBOOK = REPO_ROOT / "docs" / "event_notebook.ipynb"


def _text(cell) -> str:
    return "\n".join(
        "".join(output.get("text", "")) + json.dumps(output.get("data", {}).get("text/plain", ""))
        for output in cell.get("outputs", [])
    )


@pytest.mark.slow
def test_notebook_attributes_the_event_and_compares_single_and_joint_posteriors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "ATTRIBUTION_NOTEBOOK_CHAINS": "2",
        "ATTRIBUTION_NOTEBOOK_WARMUP": "150",
        "ATTRIBUTION_NOTEBOOK_SAMPLES": "150",
        "ATTRIBUTION_NOTEBOOK_ESCALATE": "0",
        "ATTRIBUTION_NOTEBOOK_OUTPUT": str(tmp_path / "out"),
    }.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    images = sum("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))
    assert images >= 4, "observed vs simulated, predictive, posterior, and the comparison figure"
    comparison = _text(cells[-2])
    for label in ("EMIT", "TROPOMI", "GHGSAT", "joint"):
        assert label in comparison
    assert (tmp_path / "out" / "catalog" / "overpass_catalog.parquet").is_file()
