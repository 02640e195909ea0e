"""What is known of a file the crawl rejected, so an event it would have served can say so.

A rejected file is not catalogued, yet an event whose AOI and time window it covers must not read "no
overpass" for its instrument. The crawl records beside the reason what can still be told of the file
(:func:`rejected_extent`):

- the instrument: from the native file name (EMIT, TROPOMI, OCO-2, WRF) or, for the products
  recognised by content, from the suffix (``.h5``/``.he5``/``.hdf5``: GHGSat; ``.nc``/``.nc4``/
  ``.zip``: ERA5, the only products the crawl looks for under those names);
- the time span: from the native name (the TROPOMI orbit's start and end, the EMIT scene's start, the
  OCO-2 day, the WRF run's first output time), else from a time stamp in a user-chosen name
  (``YYYYMMDDTHHMMSS``: that instant; ``YYYYMMDD`` alone: from that day on), and from the content
  where the file still opens (``time_coverage_start``/``_end``, the ERA5 time axis);
- the bounding box of the footprint: from the latitude/longitude variables where the file still opens.

Whatever cannot be told is left empty. :func:`rejected_overlapping` keeps the rejected files that
nothing known rules out for an instrument, a box and a time window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pandas as pd

from attribution_assets.catalog.filenames import parse_native_name
from attribution_assets.catalog.footprints import (
    ERA5_SUFFIXES,
    GHGSAT_SUFFIXES,
    decoded,
    num2date_utc,
    open_netcdf,
)
from attribution_assets.readers.bbox import normalise_lon, overlaps_bbox
from attribution_assets.readers.layout import find_variable, variable_units
from attribution_assets.readers.values import attribute_text, masked_to_nan
from attribution_assets.times import iso_z, parse_time

EXTENT_COLUMNS = ["instrument", "time_start", "time_end", "west", "south", "east", "north"]
"""Columns of a rejected file beside ``path`` and ``reason``: the instrument (empty when unknown), the
time span (ISO 8601 UTC; empty when unknown) and the footprint's bounding box (degrees east/north;
empty when unknown)."""

GEOLOCATION = {
    "EMIT": ("location/lat", "location/lon"),
    "TROPOMI": ("PRODUCT/latitude", "PRODUCT/longitude"),
    "GHGSAT": ("geolocation/latitude", "geolocation/longitude"),
    "OCO2": ("latitude", "longitude"),
    "ERA5": ("latitude", "longitude"),
    "WRF": ("XLAT", "XLONG"),
}
"""The latitude and longitude variables (degrees) of each product."""

_STAMP = re.compile(r"(?<!\d)(\d{8})T(\d{6})Z?(?!\d)")
_DATE = re.compile(r"(?<!\d)(\d{8})(?!\d)")
_UNREADABLE = (OSError, ValueError, KeyError, IndexError, RuntimeError, TypeError, OverflowError)
"""What reading a broken file's remains may raise; the extent is then left unknown."""


@dataclass(frozen=True)
class RejectedExtent:
    """What is known of a rejected file: ``instrument`` ("" when unknown), ``time_start`` and
    ``time_end`` (aware UTC; ``None`` when unknown) and ``bbox`` (west, south, east, north in degrees;
    ``None`` when unknown)."""

    instrument: str = ""
    time_start: datetime | None = None
    time_end: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None

    def as_row(self) -> dict[str, object]:
        """The :data:`EXTENT_COLUMNS` of ``rejected_files.csv`` (times as ISO 8601 UTC text, the box as
        floats; NaN or "" when unknown)."""
        west, south, east, north = self.bbox if self.bbox is not None else (np.nan,) * 4
        return {
            "instrument": self.instrument,
            "time_start": iso_z(self.time_start) if self.time_start is not None else "",
            "time_end": iso_z(self.time_end) if self.time_end is not None else "",
            "west": west,
            "south": south,
            "east": east,
            "north": north,
        }


def _day(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def extent_from_name(name: str) -> RejectedExtent:
    """The instrument and time span a file name tells (no file access)."""
    native = parse_native_name(name)
    if native is not None:
        start, end = native.time_start, native.time_end
        if native.instrument == "EMIT":
            end = start  # a scene lasts seconds
        elif native.instrument == "OCO2" and start is not None:
            end = start + timedelta(days=1) - timedelta(microseconds=1)
        return RejectedExtent(native.instrument, start, end)
    suffix = Path(name).suffix.lower()
    instrument = "GHGSAT" if suffix in GHGSAT_SUFFIXES else "ERA5" if suffix in ERA5_SUFFIXES else ""
    stamp = _STAMP.search(name)
    if stamp is not None:
        try:
            when = datetime.strptime(stamp[1] + stamp[2], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            return RejectedExtent(instrument, when, when)
        except ValueError:
            pass  # not a time stamp after all: look for a date alone
    day = next((d for d in map(_day, _DATE.findall(name)) if d is not None), None)
    return RejectedExtent(instrument, day, None)


def _values(var: h5py.Dataset | netCDF4.Variable) -> np.ndarray:
    return decoded(var) if isinstance(var, h5py.Dataset) else masked_to_nan(var[:])


def _bbox(handle: h5py.File | netCDF4.Dataset, instrument: str) -> tuple[float, float, float, float] | None:
    names = GEOLOCATION.get(instrument)
    if names is None:
        return None
    lat_var, lon_var = (find_variable(handle, name) for name in names)
    if lat_var is None or lon_var is None:
        return None
    lat, lon = np.ravel(_values(lat_var)), normalise_lon(np.ravel(_values(lon_var)))
    lat, lon = lat[np.isfinite(lat) & (np.abs(lat) <= 90)], lon[np.isfinite(lon)]
    if not lat.size or not lon.size:
        return None
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def _attribute(handle: h5py.File | netCDF4.Dataset, name: str) -> str | None:
    if isinstance(handle, h5py.File):
        return attribute_text(handle.attrs[name]) if name in handle.attrs else None
    return str(handle.getncattr(name)) if name in handle.ncattrs() else None


def _times(handle: h5py.File | netCDF4.Dataset) -> tuple[datetime, datetime] | None:
    """The file's time span from ``time_coverage_start``/``_end`` or a CF time axis (ERA5)."""
    start, end = _attribute(handle, "time_coverage_start"), _attribute(handle, "time_coverage_end")
    if start is not None:
        return parse_time(start), parse_time(end or start)
    for name in ("valid_time", "time"):
        var = find_variable(handle, name)
        units = variable_units(var) if var is not None else None
        if units is None or " since " not in units:
            continue
        values = _values(var)
        values = values[np.isfinite(values)]
        if not values.size:
            return None
        first, last = num2date_utc(np.array([values.min(), values.max()]), units)
        return first, last
    return None


def _from_content(path: Path, known: RejectedExtent) -> RejectedExtent:
    """``known`` with the time span and bounding box the file's remains still give (HDF5/netCDF-4 and
    complete NetCDF-3 files; nothing is read from a zip or a truncated NetCDF-3 file)."""
    with open_netcdf(path, path) as handle:
        if handle is None:
            return known
        times = _times(handle)
        bbox = _bbox(handle, known.instrument)
    start, end = times if times is not None else (known.time_start, known.time_end)
    return RejectedExtent(known.instrument, start, end, bbox)


def rejected_extent(path: str | Path) -> RejectedExtent:
    """What can still be told of a rejected file (see the module doc); never raises for a broken file."""
    path = Path(path)
    known = extent_from_name(path.name)
    try:
        return _from_content(path, known)
    except _UNREADABLE:
        return known


def _timestamps(column: pd.Series) -> pd.Series:
    """ISO 8601 texts as aware UTC times; empty or unreadable text as NaT."""
    return pd.to_datetime(column.fillna("").astype(str), utc=True, errors="coerce", format="ISO8601")


def rejected_overlapping(
    rejected: pd.DataFrame,
    instrument: str,
    bbox: tuple[float, float, float, float],
    time_start: datetime,
    time_end: datetime,
) -> pd.DataFrame:
    """The rows of ``rejected`` (``rejected_files.csv``: path, reason and :data:`EXTENT_COLUMNS`) of
    ``instrument`` that nothing known rules out for ``bbox`` (west, south, east, north; degrees) and the
    window [``time_start``, ``time_end``] (aware UTC): a known start after the window, a known end
    before it, or a known box apart from ``bbox`` (longitudes modulo 360) rules a file out. A row
    without an instrument (a list written before the extent was recorded) takes the instrument and
    time span its file name tells.
    Other columns are kept; the times become aware UTC timestamps (NaT when unknown) and
    ``extent_known`` says whether the time span or the box was known."""
    frame = rejected.copy()
    for column in ("path", "reason", *EXTENT_COLUMNS):
        if column not in frame:
            frame[column] = ""
    if frame.empty:
        return frame.assign(extent_known=pd.Series(dtype=bool))
    blank = frame["instrument"].isna() | (frame["instrument"].astype(str) == "")
    for index in frame.index[blank]:
        named = extent_from_name(Path(str(frame.at[index, "path"])).name).as_row()
        for column in ("instrument", "time_start", "time_end"):
            frame.at[index, column] = named[column]
    start, end = _timestamps(frame["time_start"]), _timestamps(frame["time_end"])
    box = frame[["west", "south", "east", "north"]].apply(pd.to_numeric, errors="coerce")
    outside_time = (start > pd.Timestamp(time_end)) | (end < pd.Timestamp(time_start))
    has_box = box.notna().all(axis=1)
    apart = has_box & ~overlaps_bbox(
        box["west"].to_numpy(), box["east"].to_numpy(), box["south"].to_numpy(), box["north"].to_numpy(), bbox
    )
    keep = (frame["instrument"] == instrument) & ~outside_time & ~apart
    frame["time_start"], frame["time_end"] = start, end
    frame["extent_known"] = start.notna() | end.notna() | has_box
    return frame[keep].reset_index(drop=True)
