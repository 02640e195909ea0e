"""Small helpers shared by the asset modules."""

from __future__ import annotations

import base64
import io

import matplotlib
from dagster import AssetExecutionContext, MetadataValue

from attribution_assets.events import DetectionEvent, parse_event_key

matplotlib.use("Agg")

INSTRUMENTS = ("EMIT", "TROPOMI", "GHGSAT", "OCO2")
MET_SOURCES = ("ERA5", "WRF")
INSTRUMENT_GAS = {"EMIT": "CH4", "TROPOMI": "CH4", "GHGSAT": "CH4", "OCO2": "CO2"}
"""The gas each instrument measures."""


def event_of(context: AssetExecutionContext) -> DetectionEvent:
    """The detection event of the partition being materialised."""
    return parse_event_key(context.partition_key)


def figure_metadata(figure, path) -> dict[str, MetadataValue]:
    """Save a matplotlib figure as PNG at ``path`` and return metadata that shows it in the UI."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    path.write_bytes(buffer.getvalue())
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return {"figure": MetadataValue.md(f"![figure](data:image/png;base64,{encoded})"),
            "figure_path": MetadataValue.path(str(path))}
