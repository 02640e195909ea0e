"""Small helpers shared by the asset modules."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MetadataValue
from matplotlib.figure import Figure

from attribution_assets.events import DetectionEvent, parse_event_key

INSTRUMENTS = ("EMIT", "TROPOMI", "GHGSAT", "OCO2")
MET_SOURCES = ("ERA5", "WRF")
INSTRUMENT_GAS = {"EMIT": "CH4", "TROPOMI": "CH4", "GHGSAT": "CH4", "OCO2": "CO2"}
"""The gas each instrument measures."""


def event_of(context: AssetExecutionContext) -> DetectionEvent:
    """The detection event of the partition being materialised."""
    return parse_event_key(context.partition_key)


def new_figure(
    nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8), squeeze: bool = True
) -> tuple[Figure, Any]:
    """A figure and its axes (as ``Figure.subplots`` returns them), size in inches.

    Object-oriented matplotlib: no pyplot state and no global backend, so figures can be drawn in any
    process or thread; :func:`figure_metadata` renders them to PNG.
    """
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(nrows, ncols, squeeze=squeeze)


def figure_metadata(figure: Figure, path: Path) -> dict[str, MetadataValue]:
    """Save a matplotlib figure as PNG at ``path`` and return metadata that shows it in the UI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    path.write_bytes(buffer.getvalue())
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return {"figure": MetadataValue.md(f"![figure](data:image/png;base64,{encoded})"),
            "figure_path": MetadataValue.path(str(path))}
