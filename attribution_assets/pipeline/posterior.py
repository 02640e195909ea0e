"""The posterior row of one event: the output schema (README) as a one-row GeoDataFrame.

``instrument_outcomes`` (JSON, instrument -> outcome) says what became of every instrument's data, so
an instrument that dropped out (no overpass, rejected file, 0 valid pixels in the AOI) is recorded,
never silent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import Point

from attribution_assets.events import DetectionEvent
from attribution_assets.pipeline.settings import INSTRUMENTS
from attribution_assets.science.attribution import UNLISTED_ID

if TYPE_CHECKING:
    from attribution_assets.science.inversion import PosteriorSummary

SUMMARY_COLUMNS = (
    "source_lon",
    "source_lat",
    "source_location_sd_m",
    "emission_rate_kg_h",
    "emission_rate_kg_h_p05",
    "emission_rate_kg_h_p50",
    "emission_rate_kg_h_p95",
    "emission_rate_kg_h_sd",
    "emission_rate_lower_limit_kg_h",
    "emission_rate_upper_limit_kg_h",
    "p_source",
    "detected",
    "method",
    "r_hat_max",
    "ess_bulk_min",
    "divergences",
    "converged",
)


def _confidence_interval(row: Mapping[str, Any]) -> tuple[float, float] | None:
    """A non-detection's 90 % confidence interval (kg h-1); None for a detection, or for a row
    written before the interval existed (an upper limit alone counts from 0)."""
    upper = float(row.get("emission_rate_upper_limit_kg_h", float("nan")))
    lower = float(row.get("emission_rate_lower_limit_kg_h", float("nan")))
    if bool(row["detected"]) or not np.isfinite(upper):
        return None
    return (lower if np.isfinite(lower) else 0.0), upper


def rate_interval(row: Mapping[str, Any]) -> tuple[float, float]:
    """The 90 % interval (kg h-1) of a posterior row's emission rate: the 5th to 95th percentile for a
    detection, the confidence interval ``[lower limit, upper limit]`` for a non-detection (see
    :mod:`attribution_assets.science.inversion.result`)."""
    interval = _confidence_interval(row)
    if interval is None:
        return float(row["emission_rate_kg_h_p05"]), float(row["emission_rate_kg_h_p95"])
    return interval


def interval_text(row: Mapping[str, Any], rate: Callable[[float], str]) -> str:
    """A row's 90 % interval for people, each rate written by ``rate``: ``low .. high`` for a
    detection, ``not detected, below <upper limit>`` for a non-detection (``not detected, low ..
    high`` where its confidence interval excludes 0)."""
    low, high = rate_interval(row)
    if _confidence_interval(row) is None:
        return f"{rate(low)} .. {rate(high)}"
    if low > 0.0:
        return f"not detected, {rate(low)} .. {rate(high)}"
    return f"not detected, below {rate(high)}"


def alert_score(emission_draws_kg_h: np.ndarray, threshold_kg_h: float) -> float:
    """Posterior probability that the emission rate exceeds the operator alert threshold (kg h-1)."""
    draws = np.ravel(emission_draws_kg_h)
    return float(np.mean(draws > threshold_kg_h)) if draws.size else 0.0


def baseline_columns(baselines: gpd.GeoDataFrame) -> dict[str, object]:
    """``ime_*`` and ``csf_*`` columns from the finest instrument (EMIT before GHGSat); NaN if none."""
    columns: dict[str, object] = {}
    for method in ("IME", "CSF"):
        rows = baselines[baselines["method"] == method].sort_values(
            "instrument", key=lambda s: s.map({"EMIT": 0, "GHGSAT": 1}).fillna(2)
        )
        best = rows.iloc[0] if len(rows) else None
        prefix = method.lower()
        columns[f"{prefix}_emission_rate_kg_h"] = float(best["rate_kg_h"]) if best is not None else np.nan
        columns[f"{prefix}_emission_rate_kg_h_sd"] = (
            float(best["rate_kg_h_sd"]) if best is not None else np.nan
        )
        columns[f"{prefix}_instrument"] = str(best["instrument"]) if best is not None else ""
    return columns


def attribution_columns(attribution: gpd.GeoDataFrame) -> dict[str, object]:
    """The most probable hypothesis (a listed facility, or ``"unlisted"`` for a source not in the
    inventory), its probability, and the probability of an unlisted source; empty when no draw has a
    source."""
    unlisted = attribution.loc[attribution["facility_id"] == UNLISTED_ID, "probability"]
    if not len(attribution):
        return {
            "attributed_facility_id": "",
            "attributed_facility_name": "",
            "attributed_probability": np.nan,
            "p_unlisted_source": np.nan,
        }
    best = attribution.sort_values(["probability", "facility_id"], ascending=[False, True]).iloc[0]
    return {
        "attributed_facility_id": str(best["facility_id"]),
        "attributed_facility_name": str(best["name"]),
        "attributed_probability": float(best["probability"]),
        "p_unlisted_source": float(unlisted.iloc[0]) if len(unlisted) else np.nan,
    }


def instrument_outcome(aoi_outcomes: Mapping[str, str], valid_pixels: Mapping[str, int]) -> str:
    """One instrument's outcome from its AOI ``outcomes`` (file name -> outcome) and the valid pixels
    per granule (file stem -> count) of its observation blocks."""
    if not aoi_outcomes:
        return "not run"
    if set(aoi_outcomes) == {"-"}:
        return aoi_outcomes["-"]
    parts = []
    for name, outcome in sorted(aoi_outcomes.items()):
        if outcome != "read":
            parts.append(f"{outcome} ({name})")
            continue
        count = valid_pixels.get(name.rsplit(".", 1)[0] if "." in name else name)
        if count is None:
            parts.append(f"read, not in the forward model ({name})")
        elif count == 0:
            parts.append(f"0 valid pixels in AOI ({name})")
        else:
            parts.append(f"{count} valid pixels ({name})")
    return "; ".join(parts)


def instrument_outcomes(
    aoi: Mapping[str, Mapping[str, str]], valid_pixels: Mapping[str, Mapping[str, int]]
) -> dict[str, str]:
    """Outcome of every instrument: ``aoi`` maps an instrument to its AOI ``outcomes``, ``valid_pixels``
    maps it to the valid pixels per granule of the forward model (``ForwardModel.valid_pixels``)."""
    return {name: instrument_outcome(aoi.get(name, {}), valid_pixels.get(name, {})) for name in INSTRUMENTS}


def posterior_row(
    event: DetectionEvent,
    summary: PosteriorSummary,
    alert_score_value: float,
    baselines: gpd.GeoDataFrame,
    attribution: gpd.GeoDataFrame,
    outcomes: Mapping[str, str],
    provenance: str,
) -> gpd.GeoDataFrame:
    """The one-row GeoDataFrame of the output schema (geometry = posterior mean source position)."""
    row = {
        "event_key": event.key,
        "event_id": event.event_id or event.key,
        "event_time": pd.Timestamp(event.time),
        "gas": event.gas,
        "latitude": event.latitude,
        "longitude": event.longitude,
        **{name: getattr(summary, name) for name in SUMMARY_COLUMNS},
        "instruments": ",".join(summary.instruments),
        "alert_score": alert_score_value,
        **baseline_columns(baselines),
        **attribution_columns(attribution),
        "instrument_outcomes": json.dumps(dict(outcomes), sort_keys=True),
        "provenance": provenance,
    }
    frame = pd.DataFrame([row])
    frame["detected"] = frame["detected"].astype(bool)
    frame["divergences"] = frame["divergences"].astype("int64")
    return gpd.GeoDataFrame(
        frame, geometry=[Point(summary.source_lon, summary.source_lat)], crs="EPSG:4326"
    )
