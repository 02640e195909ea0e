"""Small helpers shared by the asset modules."""

from __future__ import annotations

import base64
import io
from importlib.metadata import version
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue
from matplotlib.figure import Figure

from attribution_assets.events import DetectionEvent, parse_event_key

CODE_VERSION = version("attribution-assets")
"""``code_version`` of every asset: the package version (bumped with any change to a stage's logic)."""


def event_of(context: AssetExecutionContext) -> DetectionEvent:
    """The detection event of the partition being materialised."""
    return parse_event_key(context.partition_key)


def figure_metadata(figure: Figure, path: Path) -> dict[str, MetadataValue]:
    """Save a matplotlib figure as PNG at ``path`` and return metadata that shows it in the UI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    path.write_bytes(buffer.getvalue())
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return {"figure": MetadataValue.md(f"![figure](data:image/png;base64,{encoded})"),
            "figure_path": MetadataValue.path(str(path))}


def table_metadata(frame: pd.DataFrame, empty: str = "none") -> MetadataValue:
    """A markdown table of ``frame`` for the UI (``empty`` when it has no row)."""
    return MetadataValue.md(frame.to_markdown(index=False) if len(frame) else empty)
