"""Scan candidates -> deduplicated DetectionEvents."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from attribution_assets.events import is_event_key, parse_event_key
from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.samples.scenes import load_events
from attribution_assets.science.detection.candidates import detections_to_events, scan_emit_plumes
from attribution_assets.science.detection.matched_filter import CH4_WINDOW_NM

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
