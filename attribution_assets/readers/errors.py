"""Reader errors and small helpers shared by every product reader.

Every reader raises :class:`ProductFormatError` for a file that does not match its documented layout
and :class:`EmptyAOIError` when the requested bounding box holds no usable data. Both messages name
the file, so a failing event can be diagnosed from the run log alone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
BBox = tuple[float, float, float, float]
"""(west, south, east, north) in degrees; west > east means the box crosses the antimeridian."""

HEADTAIL_BYTES = 65536
"""Bytes hashed at each end of a file by :func:`file_checksum`."""
CHECKSUM_ALGORITHM = "sha256-headtail-v1"


class ProductFormatError(ValueError):
    """A product file does not match the layout its reader expects.

    Parameters
    ----------
    path: the offending file.
    variable: the variable, group, attribute or dimension that is wrong (``"<file>"`` for the whole file).
    expected: what the reader expected to find there.
    """

    def __init__(self, path: str | os.PathLike[str], variable: str, expected: str) -> None:
        self.path = str(path)
        self.variable = variable
        self.expected = expected
        super().__init__(f"{self.path}: variable {variable!r}: expected {expected}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return (type(self), (self.path, self.variable, self.expected))


class EmptyAOIError(LookupError):
    """The bounding box holds no usable data in this file (a normal outcome, not a broken file).

    Parameters
    ----------
    path: the file that was read.
    bbox: the requested (west, south, east, north) box in degrees.
    reason: optional detail, e.g. "no pixel with qa_value >= 0.5".
    """

    def __init__(self, path: str | os.PathLike[str], bbox: Sequence[float] | None, reason: str = "") -> None:
        self.path = str(path)
        self.bbox = None if bbox is None else tuple(float(v) for v in bbox)
        self.reason = reason
        detail = f" ({reason})" if reason else ""
        super().__init__(f"{self.path}: no data inside bbox (west, south, east, north)={self.bbox}{detail}")

    def __reduce__(self) -> tuple[type, tuple[str, tuple[float, ...] | None, str]]:
        return (type(self), (self.path, self.bbox, self.reason))


def file_checksum(path: str | os.PathLike[str]) -> str:
    """Content fingerprint of a file: ``"sha256-headtail-v1:<size in bytes>:<64 hex>"``.

    The sha256 covers the size (decimal ASCII and a newline), the first 64 KiB and the last 64 KiB of the
    file (the whole file when it is at most 128 KiB). It reads at most 128 KiB whatever the file size, so
    provenance and the catalog share one cheap fingerprint; the algorithm is named in the value because
    it does not cover every byte of a large file. The same content always gives the same value (the
    modification time is not part of it).
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest = hashlib.sha256(f"{size}\n".encode())
        digest.update(handle.read(HEADTAIL_BYTES))
        if size > HEADTAIL_BYTES:
            handle.seek(max(size - HEADTAIL_BYTES, HEADTAIL_BYTES))
            digest.update(handle.read(HEADTAIL_BYTES))
    return f"{CHECKSUM_ALGORITHM}:{size}:{digest.hexdigest()}"


def validate_bbox(path: str | os.PathLike[str], bbox: Sequence[float] | None) -> BBox | None:
    """Check a (west, south, east, north) box in degrees and return it as floats (None passes)."""
    if bbox is None:
        return None
    if len(bbox) != 4:
        raise ValueError(f"{path}: bbox must be (west, south, east, north), got {bbox!r}")
    west, south, east, north = (float(v) for v in bbox)
    if not (-90.0 <= south <= north <= 90.0):
        raise ValueError(f"{path}: bbox latitudes must satisfy -90 <= south <= north <= 90, got {bbox!r}")
    if not all(np.isfinite([west, east])):
        raise ValueError(f"{path}: bbox longitudes must be finite, got {bbox!r}")
    return (west, south, east, north)


def overlaps_bbox(
    lon_min: np.ndarray, lon_max: np.ndarray, lat_min: np.ndarray, lat_max: np.ndarray, bbox: BBox
) -> np.ndarray:
    """Boolean mask: do the boxes [lon_min, lon_max] x [lat_min, lat_max] (degrees) touch ``bbox``?

    Longitudes are compared modulo 360, so a bbox with west > east (crossing the antimeridian) and
    inputs in either [-180, 180) or [0, 360) work. NaN inputs give False.
    """
    west, south, east, north = bbox
    east_unwrapped = east + 360.0 if west > east else east
    lat_ok = (lat_max >= south) & (lat_min <= north)
    lo = np.asarray(lon_min, dtype=np.float64)
    hi = np.asarray(lon_max, dtype=np.float64)
    shift = np.floor((lo - west) / 360.0) * 360.0
    lo, hi = lo - shift, hi - shift  # lo now in [west, west + 360)
    lon_ok = (lo <= east_unwrapped) | (hi >= west + 360.0)
    return np.asarray(lat_ok & lon_ok)


def in_bbox(lon: np.ndarray, lat: np.ndarray, bbox: BBox) -> np.ndarray:
    """Boolean mask of points (degrees) inside ``bbox`` (edges included, antimeridian aware)."""
    return overlaps_bbox(lon, lon, lat, lat, bbox)


def attribute_text(value: object) -> str:
    """An HDF5/netCDF attribute value as text (bytes decoded, 1-element arrays unwrapped)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def normalise_lon(lon: np.ndarray) -> np.ndarray:
    """Map longitudes in degrees to [-180, 180)."""
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0


def iso_utc(value: datetime | np.datetime64 | str) -> str:
    """Format a time as ISO 8601 UTC with a ``Z`` suffix, whole seconds (naive values are UTC)."""
    if isinstance(value, str):
        value = parse_time(value)
    if isinstance(value, np.datetime64):
        seconds = value.astype("datetime64[s]").astype(np.int64)
        value = datetime.fromtimestamp(int(seconds), tz=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time (``Z``, ``+0000`` or ``+00:00`` offsets; naive means UTC) to aware UTC."""
    cleaned = text.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(cleaned, fmt).astimezone(UTC)
        except ValueError:
            pass
    parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def read_product(
    path: str | os.PathLike[str],
    bbox: Sequence[float] | None,
    opener: Callable[[str | os.PathLike[str]], Any],
    file_kind: str,
    check: Callable[[Any, str | os.PathLike[str]], object],
    build: Callable[[Any, str | os.PathLike[str], BBox | None], T],
) -> T:
    """Open ``path`` with ``opener``, check its layout, build the carrier for ``bbox``, always close.

    Unreadable files and failing reads become :class:`ProductFormatError` naming the file;
    :class:`EmptyAOIError` and the layout checks' own errors pass through.
    """
    box = validate_bbox(path, bbox)
    try:
        handle = opener(path)
    except OSError as exc:
        raise ProductFormatError(path, "<file>", f"a readable {file_kind} file ({exc})") from exc
    try:
        check(handle, path)
        return build(handle, path, box)
    except (RuntimeError, OSError, KeyError) as exc:
        raise ProductFormatError(path, "<file>", f"readable contents ({exc})") from exc
    finally:
        handle.close()


def provenance_attrs(
    path: str | os.PathLike[str], product_version: str, instrument: str, start: str, end: str
) -> dict[str, str]:
    """The provenance attributes every reader output carries (times already ISO 8601 UTC ``Z``)."""
    return {
        "source_file": str(Path(path).resolve()),
        "product_version": product_version,
        "checksum": file_checksum(path),
        "instrument": instrument,
        "time_coverage_start": start,
        "time_coverage_end": end,
    }
