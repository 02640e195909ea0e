"""The one home of time parsing: every accepted form lands on the same aware UTC instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from attribution_assets.times import as_utc, iso_z, parse_time, to_datetime64

INSTANT = datetime(2025, 8, 14, 17, 31, 0, 250_000, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2025-08-14T17:31:00.25Z",
        "2025-08-14T17:31:00.250000+0000",
        "2025-08-14T19:31:00.25+02:00",
        "2025-08-14T17:31:00.25",
        INSTANT,
        INSTANT.replace(tzinfo=None),
        INSTANT.astimezone(timezone(timedelta(hours=-5))),
        np.datetime64("2025-08-14T17:31:00.250000000"),
        pd.Timestamp("2025-08-14T17:31:00.25Z"),
    ],
)
def test_every_form_is_the_same_utc_instant(value):
    parsed = as_utc(value)
    assert parsed == INSTANT
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


def test_iso_z_drops_fractions_and_uses_z():
    assert iso_z(INSTANT) == "2025-08-14T17:31:00Z"
    assert iso_z("2025-08-14T19:31:00+02:00") == "2025-08-14T17:31:00Z"


def test_parse_time_names_the_bad_text():
    with pytest.raises(ValueError, match="'yesterday' is not an ISO 8601 time"):
        parse_time("yesterday")


def test_to_datetime64_scalars_and_arrays():
    assert to_datetime64(INSTANT) == np.datetime64("2025-08-14T17:31:00.25", "ns")
    times = to_datetime64(["2025-08-14T17:31:00", "2025-08-14T18:31:00"])
    assert times.dtype == np.dtype("datetime64[ns]") and times.shape == (2,)
    assert np.diff(times)[0] == np.timedelta64(3600, "s")


def test_time_helpers() -> None:
    assert iso_z(parse_time("2024-10-06T16:52:00+0000")) == "2024-10-06T16:52:00Z"
    assert iso_z(np.datetime64("2024-10-06T16:52:00.700")) == "2024-10-06T16:52:00Z"
    assert iso_z("2024-10-06T18:52:00+02:00") == "2024-10-06T16:52:00Z"
