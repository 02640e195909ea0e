"""Time parsing and formatting, in one place: every module that reads or writes a time uses these.

Conventions: times are UTC. A naive ``datetime``, a naive ISO 8601 text and a ``numpy.datetime64`` are
taken as UTC; aware values are converted. Formatted times are ISO 8601 with a ``Z`` suffix.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

TimeLike = datetime | np.datetime64 | pd.Timestamp | str
"""Anything :func:`as_utc` accepts."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MissingTimeZone(ValueError):
    """An ISO 8601 time without a time zone where :func:`parse_time` was told to require one."""


def parse_time(text: str, require_zone: bool = False) -> datetime:
    """Parse an ISO 8601 time (``Z`` or ``z``, ``+0000`` or ``+00:00`` offsets; naive means UTC, or
    with ``require_zone`` raises :class:`MissingTimeZone`) to aware UTC.

    Raises ``ValueError`` naming the text when it is not ISO 8601.
    """
    cleaned = text.strip()
    if cleaned.endswith("z"):  # RFC 3339 allows a lower-case zone designator
        cleaned = cleaned[:-1] + "Z"
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(cleaned, fmt).astimezone(UTC)
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        if require_zone:
            raise MissingTimeZone(f"{text!r} has no time zone")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def as_utc(value: TimeLike) -> datetime:
    """An aware UTC ``datetime`` (microsecond resolution) from any :data:`TimeLike`."""
    if isinstance(value, str):
        return parse_time(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, np.datetime64):
        micros = int(value.astype("datetime64[us]").astype(np.int64))
        return _EPOCH + timedelta(microseconds=micros)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_z(value: TimeLike) -> str:
    """ISO 8601 UTC with a ``Z`` suffix, whole seconds (``2025-08-14T17:31:00Z``)."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_datetime64(value: Any) -> np.ndarray:
    """Naive UTC ``datetime64[ns]`` of a time or an array of times (aware datetimes are converted).

    Returns a 0-d array for a scalar, so it broadcasts like the arrays it is combined with.
    """
    if isinstance(value, datetime | pd.Timestamp | str):
        return np.asarray(np.datetime64(as_utc(value).replace(tzinfo=None), "ns"))
    return np.asarray(value, dtype="datetime64[ns]")
