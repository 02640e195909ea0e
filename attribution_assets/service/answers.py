"""Posterior rows as service answers, and as the observation recorded on the instance.

A posterior row (the one-row GeoDataFrame of :func:`attribution_assets.pipeline.posterior_row`, or the
GeoParquet file the full run writes) becomes JSON values without loss (floats as they are, NaN as
null, times ISO 8601 UTC); the observation carries the headline numbers rounded, with units in names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from dagster import DagsterRunStatus

from attribution_assets.service.schemas import Answer, EventAnswer, EventStatus, Facility, RunState
from attribution_assets.times import iso_z

OBSERVED = {
    # observation metadata name: (row column, decimals)
    "emission_rate_kg_h": ("emission_rate_kg_h", 1),
    "emission_rate_kg_h_p05": ("emission_rate_kg_h_p05", 1),
    "emission_rate_kg_h_p50": ("emission_rate_kg_h_p50", 1),
    "emission_rate_kg_h_p95": ("emission_rate_kg_h_p95", 1),
    "emission_rate_kg_h_sd": ("emission_rate_kg_h_sd", 1),
    "emission_rate_lower_limit_kg_h": ("emission_rate_lower_limit_kg_h", 1),
    "emission_rate_upper_limit_kg_h": ("emission_rate_upper_limit_kg_h", 1),
    "p_source": ("p_source", 4),
    "alert_score": ("alert_score", 4),
    "source_lon_deg": ("source_lon", 6),
    "source_lat_deg": ("source_lat", 6),
    "source_location_sd_m": ("source_location_sd_m", 1),
    "attributed_probability": ("attributed_probability", 4),
    "p_unlisted_source": ("p_unlisted_source", 4),
}
"""Numbers of the observation: metadata name (unit in the name; ``p_``/``_probability``/``_score``:
probabilities) -> (row column, decimals kept)."""
OBSERVED_TEXT = ("event_id", "method", "instruments", "attributed_facility_id", "attributed_facility_name")
"""Text columns copied into the observation as they are."""

_STATUS = {
    DagsterRunStatus.QUEUED: "queued",
    DagsterRunStatus.NOT_STARTED: "queued",
    DagsterRunStatus.MANAGED: "queued",
    DagsterRunStatus.STARTING: "running",
    DagsterRunStatus.STARTED: "running",
    DagsterRunStatus.SUCCESS: "done",
    DagsterRunStatus.FAILURE: "failed",
    DagsterRunStatus.CANCELING: "canceled",
    DagsterRunStatus.CANCELED: "canceled",
}


def json_value(value: Any) -> Any:
    """A row value as JSON: numpy scalars as Python numbers, NaN/inf and missing values as ``None``,
    times as ISO 8601 UTC; texts, booleans and finite floats unchanged (so they round-trip exactly)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return iso_z(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def row_values(row: pd.Series) -> dict[str, Any]:
    """Every column of a posterior row but the geometry (``source_lon``/``source_lat`` carry it), as JSON."""
    return {str(name): json_value(value) for name, value in row.items() if name != "geometry"}


def observation_metadata(values: Mapping[str, Any], answer: Answer, seconds: float | None) -> dict[str, Any]:
    """The observation of an answer: the numbers of :data:`OBSERVED` rounded, ``detected``, the texts of
    :data:`OBSERVED_TEXT`, ``answer`` (fast or full) and the answer's wall time ``answer_time_s``."""
    metadata: dict[str, Any] = {}
    for name, (column, decimals) in OBSERVED.items():
        value = values.get(column)
        if value is not None:
            metadata[name] = round(float(value), decimals)
    metadata["detected"] = bool(values.get("detected"))
    for name in OBSERVED_TEXT:
        metadata[name] = str(values.get(name) or "")
    metadata["answer"] = answer
    if seconds is not None:
        metadata["answer_time_s"] = round(seconds, 2)
    return metadata


def values_from_observation(key: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Row values (column names) back from an observation's metadata (rounded as recorded)."""
    values: dict[str, Any] = {"event_key": key}
    for name, (column, _) in OBSERVED.items():
        if name in metadata:
            values[column] = metadata[name]
    values["detected"] = bool(metadata.get("detected", False))
    for name in OBSERVED_TEXT:
        values[name] = metadata.get(name) or None
    return values


def run_state(run: Any | None) -> RunState | None:
    """A Dagster run (``DagsterRun``) as its id and status; ``None`` for no run."""
    if run is None:
        return None
    return RunState(run_id=run.run_id, status=run.status.value)


def event_status(run: Any | None) -> EventStatus:
    """Where the event's full run is (``EventStatus``) from its latest Dagster run."""
    if run is None:
        return "not submitted"
    return _STATUS.get(run.status, "running")  # type: ignore[return-value]


def _number(values: Mapping[str, Any], name: str) -> float | None:
    value = values.get(name)
    return None if value is None else float(value)


def facility(values: Mapping[str, Any]) -> Facility | None:
    """The attributed hypothesis of a row; ``None`` when the row attributes nothing."""
    identifier = values.get("attributed_facility_id")
    if not identifier:
        return None
    return Facility(
        id=str(identifier),
        name=str(values.get("attributed_facility_name") or ""),
        probability=_number(values, "attributed_probability"),
    )


def event_answer(
    values: Mapping[str, Any],
    answer: Answer,
    status: EventStatus,
    run: RunState | None,
    answered_at: str,
    seconds: float | None = None,
) -> EventAnswer:
    """The service's answer from a posterior row's values (:func:`row_values`)."""
    instruments = str(values.get("instruments") or "")
    return EventAnswer(
        event_key=str(values["event_key"]),
        event_id=values.get("event_id"),
        status=status,
        answer=answer,
        method=str(values.get("method") or ""),
        emission_rate_kg_h=_number(values, "emission_rate_kg_h"),
        emission_rate_kg_h_p05=_number(values, "emission_rate_kg_h_p05"),
        emission_rate_kg_h_p95=_number(values, "emission_rate_kg_h_p95"),
        emission_rate_lower_limit_kg_h=_number(values, "emission_rate_lower_limit_kg_h"),
        emission_rate_upper_limit_kg_h=_number(values, "emission_rate_upper_limit_kg_h"),
        p_source=_number(values, "p_source"),
        detected=bool(values.get("detected")),
        instruments=[name for name in instruments.split(",") if name],
        facility=facility(values),
        alert_score=_number(values, "alert_score"),
        run=run,
        answered_at=answered_at,
        seconds=seconds,
        row=dict(values),
    )
