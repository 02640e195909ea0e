"""Formula-safe CSV (OWASP CSV injection) for every CSV written for analysts."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from attribution_assets.alerting.payload import alert_payload
from attribution_assets.alerting.tables import write_alerts
from attribution_assets.csv_safety import formula_safe_frame, formula_safe_text, write_safe_csv


@pytest.mark.parametrize("text, expected", [
    ("=1+1", "'=1+1"), ("+1+1", "'+1+1"), ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("-", "'-"), ("'=1", "'=1"),
    ("-103.61", "-103.61"), ("+1e-3", "+1e-3"), ("42", "42"), ("permian-ch4", "permian-ch4"), ("", ""),
])
def test_formula_safe_text(text: str, expected: str):
    assert formula_safe_text(text) == expected
    assert formula_safe_text(expected) == expected  # idempotent


def test_only_text_cells_change():
    frame = pd.DataFrame({"id": ["=1", None, "ok"], "x": [-1.5, np.nan, 2.0], "n": [-3, 4, 5]})
    safe = formula_safe_frame(frame)
    assert safe["id"].tolist()[0] == "'=1" and pd.isna(safe["id"].iloc[1]) and safe["id"].iloc[2] == "ok"
    pd.testing.assert_frame_equal(safe[["x", "n"]], frame[["x", "n"]])
    assert frame["id"].iloc[0] == "=1"  # the input is not modified


def test_write_safe_csv_is_atomic_and_safe(tmp_path):
    path = tmp_path / "out" / "table.csv"
    write_safe_csv(pd.DataFrame({"a": ["@x", "y"], "b": [-1, 2]}), path)
    assert list(csv.reader(path.open(newline=""))) == [["a", "b"], ["'@x", "-1"], ["y", "2"]]
    assert [p.name for p in path.parent.iterdir()] == ["table.csv"]


def test_weekly_alerts_csv_is_formula_safe(tmp_path):
    """The operator alert list of a week: a crafted event id cannot become a spreadsheet formula."""
    row = {
        "event_key": "CH4_20250814T173100Z_31.9095N_103.6100W",
        "event_id": '=HYPERLINK("http://x.example","click")',
        "event_time": pd.Timestamp("2025-08-14T17:31:00Z"),
        "gas": "CH4",
        "source_lon": -103.61,
        "source_lat": 31.9095,
        "emission_rate_kg_h": 1200.0,
        "emission_rate_kg_h_p05": 800.0,
        "emission_rate_kg_h_p95": 1600.0,
        "alert_score": 0.9,
        "instruments": "-EMIT,TROPOMI",
        "detected": True,
        "attributed_facility_id": "@facility",
        "attributed_facility_name": "+Pad A",
        "attributed_probability": 0.9,
    }
    paths = write_alerts([alert_payload(row, "run-1")], tmp_path)
    assert sorted(paths) == ["csv", "geojson", "parquet"]
    header, line = list(csv.reader((tmp_path / "alerts.csv").open(newline="")))
    cells = dict(zip(header, line, strict=True))
    assert cells["event_id"] == "'=HYPERLINK(\"http://x.example\",\"click\")"
    assert cells["instruments"] == "'-EMIT,TROPOMI"
    assert cells["facility_id"] == "'@facility" and cells["facility_name"] == "'+Pad A"
    assert cells["lon"] == "-103.61" and cells["event_time"] == "2025-08-14T17:31:00Z"
    geojson = json.loads((tmp_path / "alerts.geojson").read_text())
    assert geojson["features"][0]["properties"]["event_id"].startswith("=HYPERLINK")  # JSON is not a sheet
