"""Per-product granule descriptions for the catalog: time span and footprint polygon.

Footprints come from metadata and the edges of the geolocation arrays only — never from the data
arrays — so a crawl stays fast on archives of full-size granules. A long granule (a TROPOMI orbit,
an OCO-2 day) is split into along-track segments, one catalog row each, so footprints stay compact
and bounding-box pruning stays effective.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiPoint, Polygon
from shapely.geometry.base import BaseGeometry

from attribution_assets.catalog.filenames import NativeName
from attribution_assets.readers.errors import ProductFormatError, parse_time

TROPOMI_SEGMENT_SCANLINES = 200
OCO2_SEGMENT_KM = 400.0
OCO2_GAP_KM = 50.0
OCO2_SWATH_BUFFER_DEG = 0.06
OCO2_SIMPLIFY_DEG = 0.01  # track simplification before buffering, well inside the buffer


@dataclass(frozen=True)
class GranuleSegment:
    """One catalog row: a granule (or along-track part of one) with its time span and footprint."""

    granule_id: str
    instrument: str
    product: str
    version: str
    processing: str
    time_start: datetime
    time_end: datetime
    geometry: BaseGeometry
    n_obs: int


def _ring(lon_edges: list[np.ndarray], lat_edges: list[np.ndarray]) -> Polygon:
    lon = np.concatenate(lon_edges)
    lat = np.concatenate(lat_edges)
    good = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90)
    if good.sum() < 3:
        raise ValueError("fewer than three finite geolocation points on the granule edge")
    polygon = Polygon(np.column_stack([lon[good], lat[good]]))
    return (
        polygon
        if polygon.is_valid and polygon.area > 0
        else MultiPoint(np.column_stack([lon[good], lat[good]])).convex_hull
    )


def _edges(lat: np.ndarray, lon: np.ndarray, step: int = 16) -> Polygon:
    """Polygon from the boundary of 2-D geolocation arrays (rows x cols), subsampled every ``step``."""
    rows, cols = lat.shape
    r = np.unique(np.r_[np.arange(0, rows, step), rows - 1])
    c = np.unique(np.r_[np.arange(0, cols, step), cols - 1])
    return _ring(
        [lon[0, c], lon[r, -1], lon[-1, c[::-1]], lon[r[::-1], 0]],
        [lat[0, c], lat[r, -1], lat[-1, c[::-1]], lat[r[::-1], 0]],
    )


def _boundary_2d(var: netCDF4.Variable | h5py.Dataset, fill: float | None = None) -> np.ndarray:
    """Read only the four edges of a 2-D variable, returned as a full-shape array with NaN inside."""
    rows, cols = var.shape[-2:]
    out = np.full((rows, cols), np.nan)
    lead = (0,) * (len(var.shape) - 2)
    for index in ((0, slice(None)), (rows - 1, slice(None)), (slice(None), 0), (slice(None), cols - 1)):
        values = np.ma.filled(np.ma.asarray(var[lead + index]).astype(float), np.nan)
        out[index] = values
    if fill is not None:
        out[out == fill] = np.nan
    return out


def describe_emit(path: Path, name: NativeName) -> list[GranuleSegment]:
    """EMIT L1B RAD: time from global attributes, footprint from the edges of ``location/lat, lon``."""
    with netCDF4.Dataset(path) as nc:
        try:
            start = parse_time(nc.getncattr("time_coverage_start"))
            end = parse_time(nc.getncattr("time_coverage_end"))
        except AttributeError as error:
            raise ProductFormatError(path, "time_coverage_start/end", "global ISO 8601 attributes") from error
        if "location" not in nc.groups:
            raise ProductFormatError(path, "location", "group with lat, lon (downtrack, crosstrack)")
        loc = nc.groups["location"]
        lat = _boundary_2d(loc.variables["lat"], -9999.0)
        lon = _boundary_2d(loc.variables["lon"], -9999.0)
        version = str(nc.getncattr("product_version")) if "product_version" in nc.ncattrs() else name.version
        rows, cols = lat.shape
    return [
        GranuleSegment(
            name.granule,
            "EMIT",
            name.product,
            version,
            name.processing,
            start,
            end,
            _edges(lat, lon),
            rows * cols,
        )
    ]


def describe_tropomi(path: Path, name: NativeName) -> list[GranuleSegment]:
    """TROPOMI L2 CH4: one row per block of scanlines; footprint from the block's edge pixels."""
    with netCDF4.Dataset(path) as nc:
        try:
            product = nc.groups["PRODUCT"]
            lat_var, lon_var = product.variables["latitude"], product.variables["longitude"]
            base = netCDF4.num2date(
                product.variables["time"][0],
                product.variables["time"].units,
                only_use_cftime_datetimes=False,
                only_use_python_datetimes=True,
            )
            delta_ms = np.ma.filled(product.variables["delta_time"][0, :].astype(float), np.nan)
        except KeyError as error:
            raise ProductFormatError(path, f"PRODUCT/{error.args[0]}", "TROPOMI L2 CH4 layout") from error
        version = (
            str(nc.getncattr("processor_version")) if "processor_version" in nc.ncattrs() else name.version
        )
        n_scan, n_pix = lat_var.shape[-2:]
        base = base.replace(tzinfo=UTC)
        segments = []
        for index, first in enumerate(range(0, n_scan, TROPOMI_SEGMENT_SCANLINES)):
            last = min(first + TROPOMI_SEGMENT_SCANLINES, n_scan) - 1
            rows = np.unique([first, *range(first, last + 1, 16), last])
            cols = np.unique([0, *range(0, n_pix, 16), n_pix - 1])
            lat = np.ma.filled(lat_var[0, rows, :][:, cols].astype(float), np.nan)
            lon = np.ma.filled(lon_var[0, rows, :][:, cols].astype(float), np.nan)
            times = delta_ms[first : last + 1]
            if not np.isfinite(times).any():
                continue
            t0 = base + pd.Timedelta(milliseconds=float(np.nanmin(times))).to_pytimedelta()
            t1 = base + pd.Timedelta(milliseconds=float(np.nanmax(times))).to_pytimedelta()
            try:
                footprint = _edges(lat, lon, step=1)
            except ValueError:
                continue
            segments.append(
                GranuleSegment(
                    f"{name.granule}#{index:03d}",
                    "TROPOMI",
                    name.product,
                    version,
                    name.processing,
                    t0,
                    t1,
                    footprint,
                    (last - first + 1) * n_pix,
                )
            )
    return segments


def _haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(a))


def describe_oco2(path: Path, name: NativeName) -> list[GranuleSegment]:
    """OCO-2 Lite: the day's soundings split into along-track runs, each a buffered track line."""
    with netCDF4.Dataset(path) as nc:
        try:
            lat = np.ma.filled(nc.variables["latitude"][:].astype(float), np.nan)
            lon = np.ma.filled(nc.variables["longitude"][:].astype(float), np.nan)
            seconds = np.ma.filled(nc.variables["time"][:].astype(float), np.nan)
        except KeyError as error:
            raise ProductFormatError(path, error.args[0], "OCO-2 Lite root variable") from error
        version = str(nc.getncattr("BuildId")) if "BuildId" in nc.ncattrs() else name.version
    good = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(seconds) & (np.abs(lat) <= 90)
    lat, lon, seconds = lat[good], lon[good], seconds[good]
    order = np.argsort(seconds, kind="stable")
    lat, lon, seconds = lat[order], lon[order], seconds[order]
    if lat.size == 0:
        raise ProductFormatError(path, "latitude/longitude", "at least one finite sounding position")
    step = _haversine_km(lon[:-1], lat[:-1], lon[1:], lat[1:])
    breaks = np.flatnonzero((step > OCO2_GAP_KM) | (np.abs(np.diff(lon)) > 180))
    segments: list[GranuleSegment] = []
    for run_start, run_end in zip(np.r_[0, breaks + 1], np.r_[breaks + 1, lat.size], strict=True):
        along = np.r_[0.0, np.cumsum(step[run_start : run_end - 1])]
        pieces = np.floor(along / OCO2_SEGMENT_KM).astype(int)
        for piece in np.unique(pieces):
            idx = run_start + np.flatnonzero(pieces == piece)
            pts = np.column_stack([lon[idx], lat[idx]])
            line = LineString(pts).simplify(OCO2_SIMPLIFY_DEG) if len(idx) > 1 else shapely.Point(pts[0])
            segments.append(
                GranuleSegment(
                    f"{name.granule}#{len(segments):04d}",
                    "OCO2",
                    name.product,
                    version,
                    name.processing,
                    datetime.fromtimestamp(float(seconds[idx].min()), UTC),
                    datetime.fromtimestamp(float(seconds[idx].max()), UTC),
                    line.buffer(OCO2_SWATH_BUFFER_DEG),
                    len(idx),
                )
            )
    return segments


def describe_wrf(path: Path, name: NativeName) -> list[GranuleSegment]:
    """WRF output: domain outline from the edges of XLAT/XLONG, times from ``Times``."""
    with netCDF4.Dataset(path) as nc:
        try:
            lat = _boundary_2d(nc.variables["XLAT"])
            lon = _boundary_2d(nc.variables["XLONG"])
            times = [b"".join(row).decode() for row in np.asarray(nc.variables["Times"][:])]
        except KeyError as error:
            raise ProductFormatError(path, error.args[0], "WRF output variable") from error
    stamps = [datetime.strptime(t, "%Y-%m-%d_%H:%M:%S").replace(tzinfo=UTC) for t in times]
    return [
        GranuleSegment(
            name.granule,
            "WRF",
            name.product,
            name.version,
            name.processing,
            min(stamps),
            max(stamps),
            _edges(lat, lon),
            len(stamps),
        )
    ]


def is_ghgsat(path: Path) -> bool:
    """Content sniffing: an HDF5 file whose root attribute ``product`` is ``GHGSat_L2``."""
    if not h5py.is_hdf5(path):
        return False
    try:
        with h5py.File(path, "r") as h5:
            product = h5.attrs.get("product")
    except OSError:
        return False
    if isinstance(product, bytes):
        product = product.decode()
    return product == "GHGSat_L2"


def describe_ghgsat(path: Path) -> list[GranuleSegment]:
    """GHGSat L2 (``ghgsat_l2_v1``): times from root attributes, footprint from the geolocation edges."""
    with h5py.File(path, "r") as h5:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}
        try:
            lat = _boundary_2d(h5["geolocation/latitude"])
            lon = _boundary_2d(h5["geolocation/longitude"])
        except KeyError as error:
            raise ProductFormatError(path, "geolocation/latitude, longitude", "datasets (y, x)") from error
    for key in ("time_coverage_start", "time_coverage_end", "schema_version"):
        if key not in attrs:
            raise ProductFormatError(path, key, "root attribute of the ghgsat_l2_v1 schema")
    start, end = parse_time(str(attrs["time_coverage_start"])), parse_time(str(attrs["time_coverage_end"]))
    granule = f"GHGSAT_{attrs.get('satellite', 'unknown')}_{start:%Y%m%dT%H%M%S}"
    return [
        GranuleSegment(
            granule,
            "GHGSAT",
            "L2",
            str(attrs["schema_version"]),
            "",
            start,
            end,
            _edges(lat, lon),
            int(lat.size),
        )
    ]


def _era5_members(path: Path) -> list[tuple[str, bytes | None]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [(member, archive.read(member)) for member in archive.namelist() if member.endswith(".nc")]
    return [(str(path), None)]


def describe_era5(path: Path) -> list[GranuleSegment]:
    """ERA5 download (any name, NetCDF or the instant/accum zip): area from the coordinates, hours."""
    lons, lats, times = [], [], []
    for member, payload in _era5_members(path):
        with netCDF4.Dataset(member, memory=payload) if payload else netCDF4.Dataset(member) as nc:
            time_name = "valid_time" if "valid_time" in nc.variables else "time"
            if time_name not in nc.variables or "latitude" not in nc.variables:
                raise ProductFormatError(path, "valid_time|time, latitude, longitude", "ERA5 coordinates")
            var = nc.variables[time_name]
            stamps = netCDF4.num2date(
                var[:], var.units, only_use_cftime_datetimes=False, only_use_python_datetimes=True
            )
            times.extend(s.replace(tzinfo=UTC) for s in np.ravel(stamps))
            lats.append(np.asarray(nc.variables["latitude"][:], float))
            lons.append((np.asarray(nc.variables["longitude"][:], float) + 180.0) % 360.0 - 180.0)
    lat, lon = np.concatenate(lats), np.concatenate(lons)
    box = shapely.box(lon.min(), lat.min(), lon.max(), lat.max())
    return [
        GranuleSegment(
            f"ERA5_{path.stem}",
            "ERA5",
            "REANALYSIS_SINGLE_LEVELS",
            "",
            "",
            min(times),
            max(times),
            box,
            len(times),
        )
    ]
