"""Detection events: the unit of work of every per-event asset, and the operator alert format.

An event is (UTC time, longitude, latitude, gas). Its partition key is deterministic and readable,
e.g. ``CH4_20250814T173100Z_31.9095N_103.6100W``: the gas, the time to the second, and the position
to 1e-4 degrees (about 11 m). Keys never contain ``,``, ``|``, ``/`` or ``...`` and round-trip
exactly through :func:`event_key` / :func:`parse_event_key` for event times in
:data:`EVENT_YEARS` (UTC); each event has exactly one key (no zero padding, no ``0.0000S``).

Operator alert files are untrusted input. :func:`read_alerts` raises nothing but
:class:`AlertFormatError`, naming the file (and the row or feature), for any content: empty, binary or
non-UTF-8 files, a header without rows, malformed GeoJSON, files over :data:`MAX_ALERT_FILE_BYTES` or
with more than ``ATTRIBUTION_MAX_ALERT_ROWS`` alerts (default :data:`DEFAULT_MAX_ALERT_ROWS`).
Operator ``event_id`` texts are sanitised by :func:`sanitize_event_id`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from attribution_assets.csv_safety import formula_safe_text, write_safe_csv
from attribution_assets.times import MissingTimeZone, iso_z, parse_time

GASES = ("CH4", "CO2")
KEY_PATTERN = re.compile(
    r"^(?P<gas>CH4|CO2)_(?P<time>\d{8}T\d{6}Z)_(?P<lat>\d{1,2}\.\d{4})(?P<ns>[NS])_(?P<lon>\d{1,3}\.\d{4})(?P<ew>[EW])$"
)
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
EVENT_YEARS = (1900, 2200)
"""Event times must fall in ``[1900, 2200)`` UTC (the key has a four-digit year)."""
MAX_EVENT_ID_CHARS = 64
"""Longest operator ``event_id`` kept; longer ids are cut (see :func:`sanitize_event_id`)."""
DEFAULT_MAX_ALERT_ROWS = 10_000
"""Alerts per file unless ``ATTRIBUTION_MAX_ALERT_ROWS`` says otherwise; larger files are refused
(one Dagster dynamic-partition request per file must stay well below the ~36,000 keys SQLite fails at)."""
MAX_ALERT_FILE_BYTES = 32 * 1024**2
"""Alert files larger than 32 MiB are refused before they are read (GeoJSON is parsed whole)."""
REGISTRY_LOCK_TIMEOUT_S = 120.0
"""How long :func:`record_events` waits for another writer's lock on the registry, s."""
_SHOWN_CHARS = 60


class AlertFormatError(ValueError):
    """An operator alert file or an event key that does not follow the documented format."""


class RegistryError(ValueError):
    """The event registry (``events/registry.csv`` under the output root) cannot be read: not a CSV
    table, or a row that is not an event. The message names the file (and the row)."""


def _show(value: object) -> str:
    """``repr(value)`` cut to a readable length for error messages."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def sanitize_event_id(raw: object) -> str | None:
    """An operator ``event_id`` made safe for logs, file names and spreadsheets; ``None`` if nothing is left.

    The rule, applied in order: Unicode NFC; whitespace (tab, CR, LF, ...) becomes a space; every other
    control, format (e.g. bidirectional overrides), surrogate, private-use or unassigned character is
    removed; path separators ``/`` and ``\\`` become ``_``; runs of spaces collapse to one and the ends
    are stripped; a leading formula character (``= + - @``) gets a ``'`` in front
    (:func:`~attribution_assets.csv_safety.formula_safe_text`); the result is cut to
    :data:`MAX_EVENT_ID_CHARS` characters. The rule is idempotent.
    """
    text = unicodedata.normalize("NFC", str(raw))
    kept = []
    for char in text:
        if char.isspace():
            kept.append(" ")
        elif not unicodedata.category(char).startswith("C"):
            kept.append("_" if char in "/\\" else char)
    text = " ".join("".join(kept).split())
    text = unicodedata.normalize("NFC", formula_safe_text(text)[:MAX_EVENT_ID_CHARS]).rstrip()
    return text or None


@dataclass(frozen=True)
class DetectionEvent:
    """A detection or operator alert: UTC time, position (degrees) and gas.

    ``event_id`` is the operator's label, sanitised by :func:`sanitize_event_id`.
    """

    time: datetime
    longitude: float
    latitude: float
    gas: str = "CH4"
    event_id: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.gas not in GASES:
            raise AlertFormatError(f"gas {_show(self.gas)} is not one of {GASES}")
        if not -90.0 <= self.latitude <= 90.0:
            raise AlertFormatError(f"latitude {self.latitude} outside [-90, 90]")
        if not -180.0 <= self.longitude <= 180.0:
            raise AlertFormatError(f"longitude {self.longitude} outside [-180, 180]")
        if self.time.tzinfo is None:
            raise AlertFormatError(f"event time {self.time} has no time zone; expected UTC")
        try:
            utc = self.time.astimezone(UTC).replace(microsecond=0)
        except OverflowError as error:
            raise AlertFormatError(f"event time {self.time} is out of range ({error})") from error
        if not EVENT_YEARS[0] <= utc.year < EVENT_YEARS[1]:
            first, end = EVENT_YEARS
            raise AlertFormatError(f"event time {iso_z(utc)} outside the years [{first}, {end})")
        object.__setattr__(self, "time", utc)
        object.__setattr__(self, "longitude", round(float(self.longitude), 4))
        object.__setattr__(self, "latitude", round(float(self.latitude), 4))
        if self.event_id is not None:
            object.__setattr__(self, "event_id", sanitize_event_id(self.event_id))

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
            f"{_show(key)} is not an event key; expected GAS_YYYYMMDDTHHMMSSZ_DD.DDDD[N|S]_DDD.DDDD[E|W]"
        )
    lat = float(match["lat"]) * (1 if match["ns"] == "N" else -1)
    lon = float(match["lon"]) * (1 if match["ew"] == "E" else -1)
    try:
        time = datetime.strptime(match["time"], _TIME_FORMAT).replace(tzinfo=UTC)
        event = DetectionEvent(time=time, longitude=lon, latitude=lat, gas=match["gas"])
    except ValueError as error:  # AlertFormatError included
        raise AlertFormatError(f"{key!r} is not an event key: {error}") from error
    if event_key(event) != key:  # e.g. "05.0000N" or "0.0000S": one event has exactly one key
        raise AlertFormatError(f"{key!r} is not an event key: the key of that event is {event_key(event)!r}")
    return event


def is_event_key(key: str) -> bool:
    """Whether ``key`` is a valid event key (one that :func:`parse_event_key` accepts)."""
    try:
        parse_event_key(key)
    except AlertFormatError:
        return False
    return True


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

    Only ISO 8601 is read (:func:`~attribution_assets.times.parse_time`): a free-form parser read
    ``03/04/2025`` as 4 March and ``14/08/2025`` as 14 August in the same file. Raises
    :class:`AlertFormatError` naming ``where`` (the file and row).
    """
    try:
        return parse_time(str(value), require_zone=True)
    except MissingTimeZone as error:
        raise AlertFormatError(
            f"{where}: event_time {_show(value)} has no time zone; expected UTC (e.g. ...Z)"
        ) from error
    except ValueError as error:
        raise AlertFormatError(
            f"{where}: event_time {_show(value)} is not ISO 8601 (expected e.g. 2025-08-14T17:31:00Z)"
        ) from error


def _coordinate(value: object, name: str, where: str) -> float:
    """A latitude or longitude (degrees) from a number or a decimal text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise AlertFormatError(f"{where}: {name} {_show(value)} is not a number")
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError) as error:
        raise AlertFormatError(f"{where}: {name} {_show(value)} is not a number") from error


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def event_from_record(record: dict[str, Any], where: str) -> DetectionEvent:
    """One alert from a CSV row or GeoJSON properties; errors name ``where``."""
    missing = [name for name in ("event_time", "latitude", "longitude") if _missing(record.get(name))]
    if missing:
        raise AlertFormatError(f"{where}: missing {', '.join(missing)}")
    gas = record.get("gas")
    event_id = record.get("event_id")
    if isinstance(event_id, bool) or not (_missing(event_id) or isinstance(event_id, str | int | float)):
        raise AlertFormatError(f"{where}: event_id {_show(event_id)} is not a text")
    try:
        return DetectionEvent(
            time=_event_time(record["event_time"], where),
            longitude=_coordinate(record["longitude"], "longitude", where),
            latitude=_coordinate(record["latitude"], "latitude", where),
            gas="CH4" if _missing(gas) else str(gas).strip().upper(),
            event_id=None if _missing(event_id) else str(event_id),
        )
    except AlertFormatError as error:
        if str(error).startswith(where):
            raise
        raise AlertFormatError(f"{where}: {error}") from error
    except (TypeError, ValueError, OverflowError) as error:
        raise AlertFormatError(f"{where}: {error}") from error


def max_alert_rows() -> int:
    """``ATTRIBUTION_MAX_ALERT_ROWS`` (a positive integer) or :data:`DEFAULT_MAX_ALERT_ROWS`."""
    text = os.environ.get("ATTRIBUTION_MAX_ALERT_ROWS", "").strip()
    if not text:
        return DEFAULT_MAX_ALERT_ROWS
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"ATTRIBUTION_MAX_ALERT_ROWS={text!r} is not a positive integer")
    return int(text)


def _too_many(path: Path, max_rows: int) -> AlertFormatError:
    return AlertFormatError(
        f"{path}: more than {max_rows} alerts; split the file or raise ATTRIBUTION_MAX_ALERT_ROWS"
    )


MAX_JSON_NESTING = 32
"""Deepest array/object nesting accepted in a GeoJSON alert file (a Polygon feature needs 6)."""

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _json_nesting(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, strings ignored, counted without recursion, so a
    deeply nested document is refused with a clear error before ``json.loads`` recurses into it."""
    skeleton = np.frombuffer(_JSON_STRING.sub(b'""', raw), dtype=np.uint8)
    steps = np.isin(skeleton, (ord("["), ord("{"))).astype(np.int64)
    steps -= np.isin(skeleton, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def _geojson_features(path: Path) -> list[Any]:
    """The ``features`` list of a GeoJSON FeatureCollection file."""
    raw = path.read_bytes()
    depth = _json_nesting(raw)
    if depth > MAX_JSON_NESTING:
        raise AlertFormatError(
            f"{path}: not a GeoJSON FeatureCollection (nested {depth} deep, at most {MAX_JSON_NESTING})"
        )
    try:
        document = json.loads(raw)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError included
        raise AlertFormatError(f"{path}: not a GeoJSON FeatureCollection ({_show(str(error))})") from error
    if not isinstance(document, dict) or "features" not in document:
        raise AlertFormatError(f"{path}: not a GeoJSON FeatureCollection (no 'features' member)")
    features = document["features"]
    if not isinstance(features, list):
        raise AlertFormatError(f"{path}: GeoJSON 'features' is a {type(features).__name__}, expected a list")
    return features


def _feature_record(feature: object, where: str) -> dict[str, Any]:
    """The alert record of one GeoJSON feature; a Point geometry gives the position."""
    if not isinstance(feature, dict):
        raise AlertFormatError(f"{where}: not a GeoJSON Feature object")
    properties = feature.get("properties") or {}
    geometry = feature.get("geometry") or {}
    if not isinstance(properties, dict) or not isinstance(geometry, dict):
        raise AlertFormatError(f"{where}: 'properties' and 'geometry' must be objects")
    record = dict(properties)
    if geometry.get("type") == "Point":
        coordinates = geometry.get("coordinates")
        if not isinstance(coordinates, list) or len(coordinates) < 2:
            raise AlertFormatError(f"{where}: Point geometry has no [longitude, latitude] coordinates")
        record.setdefault("longitude", coordinates[0])
        record.setdefault("latitude", coordinates[1])
    return record


def _read_geojson(path: Path, max_rows: int) -> list[DetectionEvent]:
    features = _geojson_features(path)
    if not features:
        raise AlertFormatError(f"{path}: no alerts (the 'features' list is empty)")
    if len(features) > max_rows:
        raise _too_many(path, max_rows)
    return [
        event_from_record(_feature_record(feature, f"{path} feature {i}"), f"{path} feature {i}")
        for i, feature in enumerate(features)
    ]


def _csv_header(path: Path, reader: Iterable[list[str]]) -> list[str]:
    """The column names (stripped, lower case) of an alert CSV; the required ones must be there."""
    header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    if header is None:
        raise AlertFormatError(f"{path}: empty file; expected a header row event_time,latitude,longitude")
    names = [cell.strip().lower() for cell in header]
    if any("\x00" in name for name in names):
        raise AlertFormatError(f"{path}: binary content (NUL bytes), not a CSV text file")
    missing = [name for name in ("event_time", "latitude", "longitude") if name not in names]
    if missing:
        raise AlertFormatError(f"{path}: header has no column {', '.join(missing)}; found {_show(names)}")
    if len(set(names)) != len(names):
        raise AlertFormatError(f"{path}: header repeats a column name: {_show(names)}")
    return names


def _csv_records(path: Path, max_rows: int) -> list[tuple[str, dict[str, str]]]:
    """The rows of an alert CSV as ``(where, record)``, streamed: the file is refused as soon as it has
    more than ``max_rows`` rows, before any of them is parsed."""
    records: list[tuple[str, dict[str, str]]] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            names = _csv_header(path, reader)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank lines and rows of empty cells, as spreadsheets export them
                where = f"{path} row {reader.line_num}"
                if len(records) >= max_rows:
                    raise _too_many(path, max_rows)
                if len(row) != len(names):
                    raise AlertFormatError(f"{where}: {len(row)} fields, the header has {len(names)} columns")
                if any("\x00" in cell for cell in row):
                    raise AlertFormatError(f"{where}: binary content (NUL bytes), not a CSV text file")
                records.append((where, dict(zip(names, row, strict=True))))
        except UnicodeDecodeError as error:
            raise AlertFormatError(
                f"{path}: not UTF-8 text, near row {reader.line_num + 1} ({error.reason})"
            ) from error
        except csv.Error as error:
            where = f"{path} row {max(reader.line_num, 1)}"
            raise AlertFormatError(f"{where}: malformed CSV ({error})") from error
    if not records:
        raise AlertFormatError(f"{path}: header only, no alert rows")
    return records


def read_alerts(path: str | Path, max_rows: int | None = None) -> list[DetectionEvent]:
    """Operator alerts from CSV or GeoJSON: ``event_time`` (ISO 8601 UTC), ``latitude``,
    ``longitude``, optional ``gas`` (CH4 default) and ``event_id``.

    GeoJSON features may give the position as a Point geometry instead of properties. A ``.geojson``
    or ``.json`` file is GeoJSON, anything else CSV (UTF-8, header row; column names are case-blind;
    blank rows are skipped). Raises only :class:`AlertFormatError`, naming the file and the row (the
    line number in the file) or the feature (0-based). A file without alerts is an error, and so is a
    file over :data:`MAX_ALERT_FILE_BYTES` or with more than ``max_rows`` alerts (default
    :func:`max_alert_rows`).
    """
    path = Path(path)
    limit = max_rows or max_alert_rows()
    try:
        if not path.is_file():
            raise AlertFormatError(f"{path}: alert file not found (or not a regular file)")
        size = path.stat().st_size
        if size == 0:
            raise AlertFormatError(f"{path}: empty file (0 bytes)")
        if size > MAX_ALERT_FILE_BYTES:
            raise AlertFormatError(
                f"{path}: {size / 1024**2:.1f} MiB is over the {MAX_ALERT_FILE_BYTES // 1024**2} MiB "
                "limit of an alert file; split it"
            )
        if path.suffix.lower() in {".geojson", ".json"}:
            return _read_geojson(path, limit)
        return [event_from_record(record, where) for where, record in _csv_records(path, limit)]
    except OSError as error:
        raise AlertFormatError(f"{path}: cannot read the alert file ({error.strerror or error})") from error


REGISTRY_COLUMNS = ["event_key", "event_id", "gas", "event_time", "latitude", "longitude"]


def distinct_events(
    events: Iterable[DetectionEvent],
) -> tuple[list[DetectionEvent], list[tuple[DetectionEvent, DetectionEvent]]]:
    """One event per event key, in order: alerts of the same time, place and gas are one event, and
    the first of them is kept (its ``event_id`` with it). Returns the kept events and each repeat with
    the kept event it repeats, ``(repeat, kept)``, in order."""
    kept: dict[str, DetectionEvent] = {}
    repeats: list[tuple[DetectionEvent, DetectionEvent]] = []
    for event in events:
        first = kept.setdefault(event.key, event)
        if first is not event:
            repeats.append((event, first))
    return list(kept.values()), repeats


def _registry_unreadable(path: Path, problem: str) -> RegistryError:
    return RegistryError(
        f"{path}: the event registry cannot be read ({problem}); move it aside and register the events "
        "again (`attribution run --alerts FILE`, or the alert inbox)"
    )


def _read_registry(path: Path) -> pd.DataFrame:
    """The registry table, all text (empty when the file does not exist or is empty); raises
    :class:`RegistryError` naming the file when it is not a CSV table."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=REGISTRY_COLUMNS, dtype=str)
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise _registry_unreadable(path, f"{type(error).__name__}: {' '.join(str(error).split())}") from error


def record_events(path: str | Path, events: list[DetectionEvent]) -> None:
    """Upsert ``events`` into the CSV event registry at ``path`` (keeps operator event ids by key: an
    event key repeated in ``events`` keeps its first id, as :func:`distinct_events`; a later call's id
    replaces a registered one). Raises :class:`RegistryError` when the registry cannot be read.

    Safe with concurrent writers: the read-change-write runs under an exclusive lock
    (``<registry>.lock``, waited for up to :data:`REGISTRY_LOCK_TIMEOUT_S`), and the new table replaces
    the old one atomically, so readers see either. The CSV is formula-safe.
    """
    path = Path(path)
    rows = pd.DataFrame(
        [
            {
                "event_key": e.key,
                "event_id": e.event_id or e.key,
                "gas": e.gas,
                "event_time": iso_z(e.time),
                "latitude": f"{e.latitude:.4f}",
                "longitude": f"{e.longitude:.4f}",
            }
            for e in distinct_events(events)[0]
        ],
        columns=REGISTRY_COLUMNS,
        dtype=str,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    try:
        with FileLock(lock, timeout=REGISTRY_LOCK_TIMEOUT_S):
            merged = pd.concat([_read_registry(path), rows]).drop_duplicates("event_key", keep="last")
            write_safe_csv(merged.sort_values(["event_time", "event_key"]), path)
    except Timeout as error:
        raise TimeoutError(
            f"{lock}: another writer held the event registry lock for over {REGISTRY_LOCK_TIMEOUT_S:.0f} s"
        ) from error


def registered_events(path: str | Path) -> list[DetectionEvent]:
    """The events of the registry at ``path`` (empty when it does not exist); raises
    :class:`RegistryError` naming the file (and the row) when it cannot be read."""
    path = Path(path)
    table = _read_registry(path)
    try:
        return [
            event_from_record(row, f"{path} row {i + 2}") for i, row in enumerate(table.to_dict("records"))
        ]
    except AlertFormatError as error:
        raise _registry_unreadable(path, str(error).removeprefix(f"{path} ")) from error
