"""Small helpers shared by the asset modules: the code version, the event of a partition, figures and
tables as UI metadata."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    DagsterType,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    TypeCheck,
    TypeCheckContext,
)

from attribution_assets.atomic import atomic_path
from attribution_assets.events import DetectionEvent, parse_event_key
from attribution_assets.io_manager import is_inference_data
from attribution_assets.pipeline.provenance import code_version

if TYPE_CHECKING:
    from arviz import InferenceData
    from matplotlib.figure import Figure
else:
    InferenceData = Any
    """The annotation of an ``InferenceData`` input or output: ArviZ is imported by the steps that make
    or read one, not when the code location loads (a code server, a crawl or a roll-up has no use for
    it); Dagster checks the value with :data:`INFERENCE_DATA`, given as the asset's type."""

CODE_VERSION = code_version()
"""``code_version`` of every asset: the package version (bumped with any change to a stage's logic)."""


def _check_inference_data(_context: TypeCheckContext, value: object) -> TypeCheck:
    ok = is_inference_data(value)
    return TypeCheck(success=ok, description=None if ok else f"got {type(value).__name__}")


INFERENCE_DATA = DagsterType(
    type_check_fn=_check_inference_data,
    name="InferenceData",
    description="ArviZ InferenceData: posterior draws, sample statistics and observed data (NetCDF)",
)
"""The Dagster type of ``source_posterior``, as its output and as the input of the assets that read it."""

ROW_COUNT = "dagster/row_count"
"""The standard metadata key of a table's row count."""

NETCDF_KINDS = {"xarray", "netcdf"}
"""``kinds`` of an asset stored as NetCDF from xarray."""
TABLE_KINDS = {"geopandas", "geoparquet"}
"""``kinds`` of an asset stored as GeoParquet from GeoPandas."""


def event_of(context: AssetExecutionContext) -> DetectionEvent:
    """The detection event of the partition being materialised."""
    return parse_event_key(context.partition_key)


def png_markdown(png: bytes, alt: str = "figure") -> MetadataValue:
    """PNG bytes as an inline image in markdown metadata (there is no image metadata type)."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def figure_metadata(figure: Figure, path: Path) -> dict[str, MetadataValue]:
    """Save a matplotlib figure as PNG at ``path`` and return metadata that shows it in the UI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    with atomic_path(path) as tmp:  # a run stopped mid-write leaves the earlier figure, not half a PNG
        tmp.write_bytes(buffer.getvalue())
    return {"figure": png_markdown(buffer.getvalue()), "figure_path": MetadataValue.path(str(path))}


def _column_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    return "string"


def _cell(value: object, digits: int) -> object:
    """A table cell: floats rounded to ``digits`` significant decimals (None for NaN), numpy scalars as
    Python values, anything else as text."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else round(float(value), digits)
    return None if value is None else str(value)


def table_metadata(frame: pd.DataFrame, digits: int | dict[str, int] = 1) -> MetadataValue:
    """``frame`` as a UI table with its ``TableSchema`` (column types from the dtypes; the units belong
    in the column names). Floats are rounded to ``digits`` decimals (one number for every column, or a
    mapping column -> decimals, default 1); NaN shows as an empty cell; a geometry column is left out."""
    frame = frame.drop(columns=[c for c in frame.columns if c == "geometry"])
    places = {c: (digits.get(c, 1) if isinstance(digits, dict) else digits) for c in frame.columns}
    schema = TableSchema(columns=[TableColumn(str(c), _column_type(frame[c])) for c in frame.columns])
    records = [
        TableRecord({str(c): _cell(v, places[c]) for c, v in row.items()})
        for row in frame.to_dict("records")
    ]
    return MetadataValue.table(records=records, schema=schema)
