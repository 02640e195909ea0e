"""Scan candidates -> deduplicated DetectionEvents."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from attribution_assets.events import is_event_key, parse_event_key
from attribution_assets.science.detections import detections_to_events

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
