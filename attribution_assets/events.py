"""Detection events: the unit of work of every per-event asset, and the operator alert format.

An event is (UTC time, longitude, latitude, gas). Its partition key is deterministic and readable,
e.g. ``CH4_20250814T173100Z_31.9095N_103.6100W``: the gas, the time to the second, and the position
to 1e-4 degrees (about 11 m). Keys never contain ``,``, ``|``, ``/`` or ``...`` and round-trip
exactly through :func:`event_key` / :func:`parse_event_key`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from attribution_assets.atomic import atomic_path
from attribution_assets.times import as_utc, iso_z

GASES = ("CH4", "CO2")
KEY_PATTERN = re.compile(
    r"^(?P<gas>CH4|CO2)_(?P<time>\d{8}T\d{6}Z)_(?P<lat>\d{1,2}\.\d{4})(?P<ns>[NS])_(?P<lon>\d{1,3}\.\d{4})(?P<ew>[EW])$"
)
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


class AlertFormatError(ValueError):
    """An operator alert file or an event key that does not follow the documented format."""


@dataclass(frozen=True)
class DetectionEvent:
    """A detection or operator alert: UTC time, position (degrees) and gas."""

    time: datetime
    longitude: float
    latitude: float
    gas: str = "CH4"
    event_id: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.gas not in GASES:
            raise AlertFormatError(f"gas {self.gas!r} is not one of {GASES}")
        if not -90.0 <= self.latitude <= 90.0:
            raise AlertFormatError(f"latitude {self.latitude} outside [-90, 90]")
        if not -180.0 <= self.longitude <= 180.0:
            raise AlertFormatError(f"longitude {self.longitude} outside [-180, 180]")
        if self.time.tzinfo is None:
            raise AlertFormatError(f"event time {self.time} has no time zone; expected UTC")
        object.__setattr__(self, "time", self.time.astimezone(UTC).replace(microsecond=0))
        object.__setattr__(self, "longitude", round(float(self.longitude), 4))
        object.__setattr__(self, "latitude", round(float(self.latitude), 4))

    @property
    def key(self) -> str:
        """The partition key of this event."""
        return event_key(self)

    @property
    def iso_week(self) -> str:
        """ISO 8601 week of the event time, ``YYYY-Www``."""
        return iso_week(self.time)


def event_key(event: DetectionEvent) -> str:
    """Deterministic partition key of ``event`` (see module docstring)."""
    ns = "N" if event.latitude >= 0 else "S"
    ew = "E" if event.longitude >= 0 else "W"
    return (
        f"{event.gas}_{event.time.strftime(_TIME_FORMAT)}_"
        f"{abs(event.latitude):.4f}{ns}_{abs(event.longitude):.4f}{ew}"
    )


def parse_event_key(key: str) -> DetectionEvent:
    """Inverse of :func:`event_key`; raises :class:`AlertFormatError` for a malformed key."""
    match = KEY_PATTERN.match(key)
    if match is None:
        raise AlertFormatError(
            f"{key!r} is not an event key; expected GAS_YYYYMMDDTHHMMSSZ_DD.DDDD[N|S]_DDD.DDDD[E|W]"
        )
    lat = float(match["lat"]) * (1 if match["ns"] == "N" else -1)
    lon = float(match["lon"]) * (1 if match["ew"] == "E" else -1)
    time = datetime.strptime(match["time"], _TIME_FORMAT).replace(tzinfo=UTC)
    return DetectionEvent(time=time, longitude=lon, latitude=lat, gas=match["gas"])


def is_event_key(key: str) -> bool:
    """Whether ``key`` is a valid event key."""
    return KEY_PATTERN.match(key) is not None


def iso_week(time: datetime) -> str:
    """ISO 8601 week label ``YYYY-Www`` of a datetime."""
    year, week, _ = time.isocalendar()
    return f"{year}-W{week:02d}"


def parse_iso_week(label: str) -> tuple[datetime, datetime]:
    """Start (Monday 00:00 UTC, inclusive) and end (next Monday, exclusive) of week ``YYYY-Www``."""
    match = re.fullmatch(r"(\d{4})-W(\d{2})", label)
    if match is None:
        raise AlertFormatError(f"{label!r} is not an ISO week; expected YYYY-Www, e.g. 2025-W33")
    try:
        start = datetime.fromisocalendar(int(match[1]), int(match[2]), 1).replace(tzinfo=UTC)
    except ValueError as error:
        raise AlertFormatError(f"{label!r} is not an ISO week: {error}") from error
    return start, start + pd.Timedelta(days=7).to_pytimedelta()


def _event_time(value: object, where: str) -> datetime:
    """An alert's ``event_time`` as aware UTC; it must be ISO 8601 with a time zone (``Z`` or an offset).

    Raises :class:`AlertFormatError` naming ``where`` (the file and row).
    """
    try:
        stamp = pd.Timestamp(str(value))
    except ValueError as error:
        raise AlertFormatError(f"{where}: event_time {value!r} is not ISO 8601") from error
    if stamp.tzinfo is None:
        raise AlertFormatError(f"{where}: event_time {value!r} has no time zone; expected UTC (e.g. ...Z)")
    return as_utc(stamp)


def _event_from_record(record: dict, where: str) -> DetectionEvent:
    missing = [name for name in ("event_time", "latitude", "longitude") if record.get(name) in (None, "")]
    if missing:
        raise AlertFormatError(f"{where}: missing {', '.join(missing)}")
    gas = str(record.get("gas") or "CH4").upper()
    event_id = record.get("event_id")
    try:
        return DetectionEvent(
            time=_event_time(record["event_time"], where),
            longitude=float(record["longitude"]),
            latitude=float(record["latitude"]),
            gas=gas,
            event_id=None if event_id in (None, "") or pd.isna(event_id) else str(event_id),
        )
    except (TypeError, ValueError) as error:
        raise AlertFormatError(f"{where}: {error}") from error


def read_alerts(path: str | Path) -> list[DetectionEvent]:
    """Operator alerts from CSV or GeoJSON: ``event_time`` (ISO 8601 UTC), ``latitude``,
    ``longitude``, optional ``gas`` (CH4 default) and ``event_id``.

    GeoJSON features may give the position as a Point geometry instead of properties.
    Errors name the file and the row or feature.
    """
    path = Path(path)
    if not path.exists():
        raise AlertFormatError(f"{path}: alert file not found")
    if path.suffix.lower() in {".geojson", ".json"}:
        try:
            features = json.loads(path.read_text())["features"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise AlertFormatError(f"{path}: not a GeoJSON FeatureCollection ({error})") from error
        events = []
        for i, feature in enumerate(features):
            record = dict(feature.get("properties") or {})
            geometry = feature.get("geometry") or {}
            if geometry.get("type") == "Point":
                record.setdefault("longitude", geometry["coordinates"][0])
                record.setdefault("latitude", geometry["coordinates"][1])
            events.append(_event_from_record(record, f"{path} feature {i}"))
        return events
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return [_event_from_record(row, f"{path} row {i + 2}") for i, row in enumerate(table.to_dict("records"))]


REGISTRY_COLUMNS = ["event_key", "event_id", "gas", "event_time", "latitude", "longitude"]


def record_events(path: str | Path, events: list[DetectionEvent]) -> None:
    """Upsert ``events`` into the CSV event registry at ``path`` (keeps operator event ids by key)."""
    path = Path(path)
    rows = pd.DataFrame(
        [
            {
                "event_key": e.key,
                "event_id": e.event_id or e.key,
                "gas": e.gas,
                "event_time": iso_z(e.time),
                "latitude": e.latitude,
                "longitude": e.longitude,
            }
            for e in events
        ],
        columns=REGISTRY_COLUMNS,
    )
    if path.exists():
        rows = pd.concat([pd.read_csv(path, dtype=str), rows.astype(str)]).drop_duplicates(
            "event_key", keep="last"
        )
    with atomic_path(path) as tmp:
        rows.sort_values("event_time").to_csv(tmp, index=False)


def registered_events(path: str | Path) -> list[DetectionEvent]:
    """The events of the registry at ``path`` (empty when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    table = pd.read_csv(path, dtype=str)
    return [_event_from_record(row, f"{path} row {i + 2}") for i, row in enumerate(table.to_dict("records"))]
