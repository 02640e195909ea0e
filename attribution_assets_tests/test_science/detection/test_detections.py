"""Scan candidates -> deduplicated DetectionEvents."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from attribution_assets.events import is_event_key, parse_event_key
from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.samples.truth import load_events
from attribution_assets.science.detection.candidates import (
    Candidate,
    candidates_from_table,
    detections_to_events,
    merge_candidates,
)
from attribution_assets.science.detection.matched_filter import CH4_WINDOW_NM
from attribution_assets.science.detection.plume_scan import scan_emit_plumes

T0 = datetime(2025, 7, 21, 8, 30, tzinfo=UTC)


def test_close_candidates_merge_to_the_most_significant():
    candidates = pd.DataFrame({
        "longitude": [54.20, 54.23, 54.80, 54.205],
        "latitude": [38.50, 38.52, 38.50, 38.495],
        "significance": [6.0, 9.0, 5.5, 7.0],
    })
    events = detections_to_events(candidates, "CH4", T0, radius_km=10.0)
    assert len(events) == 2
    assert {(e.longitude, e.latitude) for e in events} == {(54.23, 38.52), (54.80, 38.50)}
    for event in events:
        assert is_event_key(event.key) and parse_event_key(event.key) == event


def test_candidate_times_and_time_window():
    site = {"longitude": -103.61, "latitude": 31.91}
    candidates = [
        {**site, "time": pd.Timestamp("2025-08-14T17:31:00Z"), "significance": 8},
        {**site, "time": pd.Timestamp("2025-08-16T17:31:00Z"), "significance": 6},
        {**site, "longitude": -103.60, "time": "2025-08-14T17:31:05", "significance": 5},
    ]
    events = detections_to_events(candidates, "CO2")
    assert [e.key for e in events] == ["CO2_20250814T173100Z_31.9100N_103.6100W",
                                       "CO2_20250816T173100Z_31.9100N_103.6100W"]
    assert detections_to_events(pd.DataFrame(columns=["longitude", "latitude"]), "CH4", T0) == []
    with pytest.raises(ValueError, match="no time"):
        detections_to_events([{"longitude": 1.0, "latitude": 2.0}], "CH4")


def test_merge_keeps_the_strongest_candidate_per_place_and_time():
    t1 = datetime(2025, 7, 21, 20, 31, tzinfo=UTC)  # 12 h 1 min after T0: another overpass
    weak = Candidate(54.20, 38.50, T0, 5.0)
    strong = Candidate(54.25, 38.52, T0, 9.0)  # 4.7 km east of weak
    later = Candidate(54.20, 38.50, t1, 4.0)
    unranked = Candidate(55.50, 38.50, T0, float("nan"))  # > 100 km away: kept, ranked last
    kept = merge_candidates([weak, unranked, later, strong], radius_km=10.0, max_dt_hours=12.0)
    assert kept == [strong, later, unranked]
    assert merge_candidates([weak, strong], radius_km=4.0) == [strong, weak]
    tie = Candidate(54.201, 38.50, T0, 5.0)
    assert merge_candidates([tie, weak]) == [tie]  # equal significance: the first one wins
    assert merge_candidates([]) == []


def test_candidates_from_table_reads_times_as_utc_and_defaults():
    table = pd.DataFrame({
        "longitude": [1.0, 2.0, 3.0],
        "latitude": [4.0, 5.0, 6.0],
        "time": [pd.Timestamp("2025-08-14T19:31:00+02:00"), "2025-08-14T17:31:05", pd.NaT],
    })
    first, second, third = candidates_from_table(table, time=np.datetime64("2025-08-14T18:00:00"))
    assert first == Candidate(1.0, 4.0, datetime(2025, 8, 14, 17, 31, tzinfo=UTC), 0.0)
    assert second.time == datetime(2025, 8, 14, 17, 31, 5, tzinfo=UTC)
    assert third.time == datetime(2025, 8, 14, 18, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="lack column"):
        candidates_from_table([{"longitude": 1.0}], T0)


def test_emit_scan_finds_the_permian_source_and_records_nothing_on_bad_radiance(sample_archive):
    k_hi = load_ch4_unit_absorption()
    path = sample_archive / "emit" / "EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc"
    ds = read_emit_l1b(path, window_nm=CH4_WINDOW_NM)
    found = scan_emit_plumes(ds, k_hi)
    pad = next(e for e in load_events() if e.event_id == "permian-ch4")
    best = found.iloc[0]
    assert best["significance"] > 20.0  # 6 t/h at EMIT noise
    assert abs(best["latitude"] - pad.source_lat) < 0.0011  # two 60 m pixels
    assert abs(best["longitude"] - pad.source_lon) < 0.0013
    assert best["time"] == pd.Timestamp("2025-08-14T17:31:00Z")
    [event] = detections_to_events(found, "CH4")  # the plume's other components merge into one event
    assert event.gas == "CH4" and is_event_key(event.key)
    # All-fill and saturated scenes: no usable pixel, so no candidate (and no exception).
    for value in (np.nan, 50.0):
        bad = ds.assign(radiance=ds["radiance"].copy(data=np.full(ds["radiance"].shape, value, np.float32)))
        empty = scan_emit_plumes(bad, k_hi)
        assert empty.empty and {"longitude", "latitude", "time"} <= set(empty.columns)
