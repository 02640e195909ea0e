"""Scan candidates (OCO-2 peaks, TROPOMI hotspots, EMIT plumes) to deduplicated detection events.

:func:`scan_emit_plumes` is the EMIT scan: the CH4 matched filter on the scene's raw geometry and the
plume-template detection rule of ``science.detection.plume_mask`` (:func:`~plume_mask.emit_plume_candidates`).

Candidates closer than ``radius_km`` (great-circle) and ``max_dt_hours`` apart are one source: the most
significant one is kept (greedy non-maximum suppression). The result is a list of
:class:`attribution_assets.events.DetectionEvent` whose keys feed the alert sensor and partitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import xarray as xr

from attribution_assets.events import DetectionEvent
from attribution_assets.science.detection.matched_filter import matched_filter
from attribution_assets.science.detection.plume_mask import emit_plume_candidates

EARTH_RADIUS_KM = 6371.0088


def _haversine_km(lon1: float, lat1: float, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, np.float64)) for v in (lon1, lat1, lon2, lat2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _utc(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def detections_to_events(
    candidates: pd.DataFrame | Iterable[Mapping[str, object]],
    gas: str,
    time: datetime | pd.Timestamp | np.datetime64 | str | None = None,
    *,
    radius_km: float = 10.0,
    max_dt_hours: float = 12.0,
) -> list[DetectionEvent]:
    """Deduplicate scan candidates and turn them into detection events.

    Args:
        candidates: rows with ``longitude``, ``latitude`` (degrees), optional ``significance`` (higher
            wins a tie-break; default all equal, first row wins) and optional ``time`` (UTC; naive =
            UTC), e.g. ``scan_oco2_peaks(...).peaks`` or ``scan_tropomi_hotspots(...).candidates``.
        gas: ``"CH4"`` or ``"CO2"``.
        time: event time used where a candidate has no (or a missing) ``time``.
        radius_km: candidates within this great-circle distance (km) of a kept one are duplicates.
        max_dt_hours: ... and within this time difference (hours).

    Returns:
        Events sorted by time, then key; one per distinct source. Raises ``ValueError`` when a
        candidate has neither its own time nor ``time``.
    """
    table = candidates.copy() if isinstance(candidates, pd.DataFrame) else pd.DataFrame(list(candidates))
    if table.empty:
        return []
    missing = {"longitude", "latitude"} - set(table.columns)
    if missing:
        raise ValueError(f"candidates lack column(s) {sorted(missing)}")
    fallback = _utc(time) if time is not None else None
    times: list[pd.Timestamp] = []
    for value in table["time"] if "time" in table.columns else [None] * len(table):
        if value is None or pd.isna(value):
            if fallback is None:
                raise ValueError("a candidate has no time and no default time was given")
            times.append(fallback)
        else:
            times.append(_utc(value))
    seconds = np.array([t.timestamp() for t in times])
    lon = table["longitude"].to_numpy(np.float64)
    lat = table["latitude"].to_numpy(np.float64)
    score = (table["significance"].to_numpy(np.float64) if "significance" in table.columns
             else np.zeros(len(table)))
    order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
    kept: list[int] = []
    for i in order:
        if kept:
            k = np.array(kept)
            close = _haversine_km(lon[i], lat[i], lon[k], lat[k]) < radius_km
            close &= np.abs(seconds[k] - seconds[i]) <= max_dt_hours * 3600.0
            if close.any():
                continue
        kept.append(int(i))
    events = {
        (ev := DetectionEvent(time=times[i].to_pydatetime().astimezone(UTC), longitude=float(lon[i]),
                              latitude=float(lat[i]), gas=gas)).key: ev
        for i in kept
    }
    return sorted(events.values(), key=lambda e: (e.time, e.key))


def scan_emit_plumes(
    ds: xr.Dataset, k_hi: tuple[np.ndarray, np.ndarray, np.ndarray], **rule: object
) -> pd.DataFrame:
    """CH4 plume source candidates of an EMIT L1B scene (reader carrier of ``readers.emit``).

    Runs :func:`~attribution_assets.science.detection.matched_filter.matched_filter` (defaults: second pass,
    albedo correction) on the raw ``(downtrack, crosstrack)`` geometry, where pixel errors are
    independent (an orthorectified map repeats pixels), then
    :func:`~attribution_assets.science.detection.plume_mask.emit_plume_candidates` (``**rule``: its
    ``threshold_sigma``, ``min_size_px``, ``lengths_px``). A candidate's position is the raw pixel's own
    ``lon``/``lat``; ``time`` is the scene start (``time_coverage_start``).

    Returns:
        The candidates table of ``emit_plume_candidates`` plus ``time``; empty when the scene holds no
        plume or no usable pixel.
    """
    radiance = ds["radiance"].transpose("downtrack", "crosstrack", "band").values
    res = matched_filter(radiance, ds["wavelength"].values, ds["fwhm"].values, k_hi)
    found = emit_plume_candidates(res.enhancement_ppm_m, res.sd_ppm_m, **rule)
    lat = ds["lat"].transpose("downtrack", "crosstrack").values
    lon = ds["lon"].transpose("downtrack", "crosstrack").values
    rows, cols = found["row"].to_numpy(np.int64), found["col"].to_numpy(np.int64)
    found["longitude"] = lon[rows, cols].astype(np.float64)
    found["latitude"] = lat[rows, cols].astype(np.float64)
    found["time"] = _utc(ds.attrs["time_coverage_start"]) if len(found) else pd.Series(dtype=object)
    return found
