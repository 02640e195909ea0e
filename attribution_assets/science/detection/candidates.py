"""Scan candidates (OCO-2 peaks, TROPOMI hotspots, EMIT plumes) to deduplicated detection events.

The scans (``peaks.scan_oco2_peaks``, ``hotspots.scan_tropomi_hotspots``, ``plume_scan.scan_emit_plumes``)
return tables of candidates; :func:`candidates_from_table` reads them as :class:`Candidate` records.
Candidates closer than ``radius_km`` (great-circle) and ``max_dt_hours`` apart are one source: the most
significant one is kept (greedy non-maximum suppression, :func:`merge_candidates`). The result is a
list of :class:`attribution_assets.events.DetectionEvent` whose keys feed the alert sensor and
partitions (:func:`detections_to_events`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from attribution_assets.events import DetectionEvent
from attribution_assets.science.sphere import haversine_km
from attribution_assets.science.units import SECONDS_PER_HOUR
from attribution_assets.times import TimeLike, as_utc


@dataclass(frozen=True)
class Candidate:
    """One scan candidate: position (degrees), time (aware UTC) and significance (higher wins a merge;
    NaN ranks last)."""

    longitude: float
    latitude: float
    time: datetime
    significance: float = 0.0


def candidates_from_table(
    candidates: pd.DataFrame | Iterable[Mapping[str, object]], time: TimeLike | None = None
) -> list[Candidate]:
    """Candidate records of a scan's table, in its row order.

    Args:
        candidates: rows with ``longitude``, ``latitude`` (degrees), optional ``significance`` (default
            0 for every row) and optional ``time`` (UTC; naive = UTC), e.g.
            ``scan_oco2_peaks(...).peaks`` or ``scan_tropomi_hotspots(...).candidates``.
        time: the time of a candidate that has no (or a missing) ``time``.

    Raises ``ValueError`` when a position column is missing, or a candidate has neither its own time
    nor ``time``.
    """
    table = candidates if isinstance(candidates, pd.DataFrame) else pd.DataFrame(list(candidates))
    if table.empty:
        return []
    missing = {"longitude", "latitude"} - set(table.columns)
    if missing:
        raise ValueError(f"candidates lack column(s) {sorted(missing)}")
    fallback = as_utc(time) if time is not None else None
    times: list[datetime] = []
    for value in table["time"] if "time" in table.columns else [None] * len(table):
        if value is None or pd.isna(value):
            if fallback is None:
                raise ValueError("a candidate has no time and no default time was given")
            times.append(fallback)
        else:
            times.append(as_utc(value))
    lon = table["longitude"].to_numpy(np.float64)
    lat = table["latitude"].to_numpy(np.float64)
    score = (
        table["significance"].to_numpy(np.float64)
        if "significance" in table.columns
        else np.zeros(len(table))
    )
    return [
        Candidate(float(x), float(y), t, float(s)) for x, y, t, s in zip(lon, lat, times, score, strict=True)
    ]


def merge_candidates(
    candidates: Sequence[Candidate], radius_km: float = 10.0, max_dt_hours: float = 12.0
) -> list[Candidate]:
    """One candidate per source: greedy non-maximum suppression, most significant first.

    A candidate within ``radius_km`` (great-circle, km) and ``max_dt_hours`` (hours) of a kept one is a
    duplicate. Ties keep the earlier candidate of ``candidates``. Returns the kept candidates, most
    significant first.
    """
    if not candidates:
        return []
    lon = np.array([c.longitude for c in candidates], dtype=np.float64)
    lat = np.array([c.latitude for c in candidates], dtype=np.float64)
    seconds = np.array([c.time.timestamp() for c in candidates])
    score = np.array([c.significance for c in candidates], dtype=np.float64)
    order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
    kept: list[int] = []
    for i in order:
        if kept:
            k = np.array(kept)
            close = haversine_km(lon[i], lat[i], lon[k], lat[k]) < radius_km
            close &= np.abs(seconds[k] - seconds[i]) <= max_dt_hours * SECONDS_PER_HOUR
            if close.any():
                continue
        kept.append(int(i))
    return [candidates[i] for i in kept]


def detections_to_events(
    candidates: pd.DataFrame | Iterable[Mapping[str, object]],
    gas: str,
    time: TimeLike | None = None,
    *,
    radius_km: float = 10.0,
    max_dt_hours: float = 12.0,
) -> list[DetectionEvent]:
    """Deduplicate scan candidates and turn them into detection events.

    Args:
        candidates: a scan's table (see :func:`candidates_from_table`).
        gas: ``"CH4"`` or ``"CO2"``.
        time: event time used where a candidate has no (or a missing) ``time``.
        radius_km, max_dt_hours: duplicates' distance (km) and time difference (hours), see
            :func:`merge_candidates`.

    Returns:
        Events sorted by time, then key; one per distinct source. Raises ``ValueError`` when a
        candidate has neither its own time nor ``time``.
    """
    kept = merge_candidates(candidates_from_table(candidates, time), radius_km, max_dt_hours)
    events = {
        (ev := DetectionEvent(time=c.time, longitude=c.longitude, latitude=c.latitude, gas=gas)).key: ev
        for c in kept
    }
    return sorted(events.values(), key=lambda e: (e.time, e.key))
