"""Event keys and operator alert files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from attribution_assets.events import (
    AlertFormatError,
    DetectionEvent,
    event_key,
    is_event_key,
    iso_week,
    parse_event_key,
    parse_iso_week,
    read_alerts,
)


def _random_events(n: int, seed: int = 1) -> list[DetectionEvent]:
    rng = np.random.default_rng(seed)
    start = datetime(2019, 1, 1, tzinfo=UTC)
    return [
        DetectionEvent(
            time=start + timedelta(seconds=int(rng.integers(0, 8 * 365 * 86400))),
            longitude=float(rng.uniform(-180, 180)),
            latitude=float(rng.uniform(-90, 90)),
            gas=str(rng.choice(["CH4", "CO2"])),
        )
        for _ in range(n)
    ]


def test_known_key():
    event = DetectionEvent(datetime(2025, 8, 14, 17, 31, tzinfo=UTC), -103.61, 31.9095, "CH4")
    assert event_key(event) == "CH4_20250814T173100Z_31.9095N_103.6100W"


@pytest.mark.parametrize("event", _random_events(300))
def test_codec_round_trip(event: DetectionEvent):
    key = event_key(event)
    assert is_event_key(key)
    assert not any(bad in key for bad in (",", "|", "/", "...", " "))
    assert parse_event_key(key) == event
    assert event_key(parse_event_key(key)) == key


def test_key_is_deterministic_under_rounding():
    a = DetectionEvent(datetime(2025, 1, 2, 3, 4, 5, 900, tzinfo=UTC), 10.000049, -5.000049)
    b = DetectionEvent(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), 10.0, -5.0)
    assert a.key == b.key == "CH4_20250102T030405Z_5.0000S_10.0000E"


def test_time_zone_is_normalised_to_utc():
    from zoneinfo import ZoneInfo

    local = datetime(2025, 6, 10, 14, 10, tzinfo=ZoneInfo("Europe/Warsaw"))
    assert DetectionEvent(local, 19.3308, 51.266, "CO2").key.startswith("CO2_20250610T121000Z")


@pytest.mark.parametrize("bad", [
    "", "CH4_20250814T173100Z_31.9095N", "N2O_20250814T173100Z_31.9095N_103.6100W",
    "CH4_20250814T1731Z_31.9095N_103.6100W", "CH4_20250814T173100Z_31.95N_103.6100W",
    "CH4_20250814T173100Z_31.9095N_103.6100W/x", "CH4,20250814T173100Z_31.9095N_103.6100W",
])
def test_invalid_keys_are_rejected(bad: str):
    assert not is_event_key(bad)
    with pytest.raises(AlertFormatError, match="not an event key"):
        parse_event_key(bad)


def test_invalid_events_are_rejected():
    with pytest.raises(AlertFormatError, match="latitude"):
        DetectionEvent(datetime(2025, 1, 1, tzinfo=UTC), 0.0, 91.0)
    with pytest.raises(AlertFormatError, match="time zone"):
        DetectionEvent(datetime(2025, 1, 1), 0.0, 0.0)
    with pytest.raises(AlertFormatError, match="gas"):
        DetectionEvent(datetime(2025, 1, 1, tzinfo=UTC), 0.0, 0.0, "N2O")


def test_iso_week_round_trip():
    assert iso_week(datetime(2025, 8, 14, tzinfo=UTC)) == "2025-W33"
    assert iso_week(datetime(2024, 12, 30, tzinfo=UTC)) == "2025-W01"
    start, end = parse_iso_week("2025-W33")
    assert start == datetime(2025, 8, 11, tzinfo=UTC) and end == datetime(2025, 8, 18, tzinfo=UTC)
    with pytest.raises(AlertFormatError):
        parse_iso_week("2025-33")


def test_read_alerts_csv_and_geojson(tmp_path):
    csv = tmp_path / "alerts.csv"
    csv.write_text("event_id,event_time,latitude,longitude,gas\n"
                   "a,2025-08-14T17:31:00Z,31.9095,-103.61,CH4\n"
                   "b,2025-06-10T12:10:00+00:00,51.266,19.3308,co2\n"
                   "c,2025-09-03T07:40:00Z,38.495,54.195,\n")
    events = read_alerts(csv)
    assert [e.gas for e in events] == ["CH4", "CO2", "CH4"]
    assert events[0].event_id == "a" and events[0].key == "CH4_20250814T173100Z_31.9095N_103.6100W"
    geojson = tmp_path / "alerts.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-103.61, 31.9095]},
         "properties": {"event_time": "2025-08-14T17:31:00Z"}}]}))
    assert read_alerts(geojson)[0].key == events[0].key


@pytest.mark.parametrize("row, message", [
    ("2025-08-14T17:31:00Z,,-103.61", "row 2: missing latitude"),
    ("2025-08-14T17:31:00,31.9,-103.61", "row 2: event_time .* no time zone"),
    ("yesterday,31.9,-103.61", "row 2: event_time 'yesterday' is not ISO 8601"),
    ("2025-08-14T17:31:00Z,131.9,-103.61", "row 2: latitude 131.9"),
])
def test_bad_alert_rows_name_file_and_row(tmp_path, row: str, message: str):
    path = tmp_path / "bad.csv"
    path.write_text("event_time,latitude,longitude\n" + row + "\n")
    with pytest.raises(AlertFormatError, match=message) as info:
        read_alerts(path)
    assert str(path) in str(info.value)
