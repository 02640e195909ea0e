"""Per-product granule descriptions for the catalog: time span and footprint polygon.

Footprints come from metadata and the edges of the geolocation arrays only — never from the data
arrays — so a crawl stays fast on archives of full-size granules. A long granule (a TROPOMI orbit,
an OCO-2 day) is split into along-track segments, one catalog row each, so footprints stay compact
and bounding-box pruning stays effective.

HDF5-based files (netCDF-4 products, GHGSat) are read with ``h5py``, which opens a file without
parsing every group and attribute (10-20 times faster than ``netCDF4.Dataset`` on these products);
CF fill values, valid ranges and scale/offset are applied by :func:`decoded`. NetCDF-3 files (WRF,
older ERA5 downloads) are read with ``netCDF4``. Each file is opened once: products recognised by
content (GHGSat, ERA5) are identified and described from the same handle.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pandas as pd
import shapely
import shapely.affinity
from shapely.geometry import MultiPoint, Polygon
from shapely.geometry.base import BaseGeometry

from attribution_assets.catalog.filenames import NativeName
from attribution_assets.readers import emit, ghgsat, oco2, tropomi, wrf
from attribution_assets.readers.bbox import normalise_lon
from attribution_assets.readers.era5 import WIND_FIELDS, era5_grid, era5_layout, required_variables
from attribution_assets.readers.errors import ProductFormatError
from attribution_assets.readers.layout import NETCDF3_SIGNATURE, check_complete, check_required, find_variable
from attribution_assets.readers.values import attribute_text as _text
from attribution_assets.readers.values import masked_to_nan
from attribution_assets.readers.wrf import WRF_TIME_FORMAT
from attribution_assets.science.sphere import haversine_km
from attribution_assets.times import parse_time

TROPOMI_SEGMENT_SCANLINES = 200
OCO2_SEGMENT_KM = 400.0
OCO2_GAP_KM = 50.0
OCO2_SWATH_BUFFER_DEG = 0.06
"""Margin (degrees; about 6.7 km in latitude) added around the convex hull of a segment's sounding
centres, so the footprint covers every sounding's own extent (about 1.3 x 2.3 km) with room to spare."""
GHGSAT_SUFFIXES = frozenset({".h5", ".he5", ".hdf5"})
ERA5_SUFFIXES = frozenset({".nc", ".nc4", ".zip"})
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"


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


def decoded(ds: h5py.Dataset, index: tuple = ()) -> np.ndarray:
    """``ds[index]`` as float64 with the CF conventions of netCDF-4 applied: values equal to
    ``_FillValue``/``missing_value`` or outside ``valid_min``/``valid_max``/``valid_range`` become NaN,
    then ``scale_factor`` and ``add_offset`` are applied (same masking as ``netCDF4`` auto-masking)."""
    raw = np.asarray(ds[index] if index else ds[()])
    values = raw.astype(np.float64)
    attrs = ds.attrs
    bad = np.zeros(raw.shape, dtype=bool)
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            for fill in np.ravel(attrs[key]):
                bad |= raw == fill
    if "valid_range" in attrs:
        low, high = np.ravel(attrs["valid_range"])[:2]
        bad |= (raw < low) | (raw > high)
    if "valid_min" in attrs:
        bad |= raw < np.ravel(attrs["valid_min"])[0]
    if "valid_max" in attrs:
        bad |= raw > np.ravel(attrs["valid_max"])[0]
    if "scale_factor" in attrs:
        values *= float(np.ravel(attrs["scale_factor"])[0])
    if "add_offset" in attrs:
        values += float(np.ravel(attrs["add_offset"])[0])
    values[bad] = np.nan
    return values


def _ring(lon_edges: list[np.ndarray], lat_edges: list[np.ndarray]) -> BaseGeometry:
    """The footprint whose boundary runs through the edge points (degrees), in [-180, 180] longitudes:
    split at the antimeridian where it crosses it (:func:`_split_at_antimeridian`), and the whole
    band of longitudes on the pole's side where the boundary winds around a pole."""
    lon = np.concatenate(lon_edges)
    lat = np.concatenate(lat_edges)
    good = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 360)
    if good.sum() < 3:
        raise ValueError("fewer than three finite geolocation points on the granule edge")
    lon, lat = np.unwrap(lon[good], period=360.0), lat[good]
    if abs(lon[-1] - lon[0]) > 180.0:  # the boundary winds around a pole
        pole = 90.0 if lat.mean() > 0 else -90.0
        return shapely.box(-180.0, min(lat.min(), pole), 180.0, max(lat.max(), pole))
    polygon = Polygon(np.column_stack([lon, lat]))
    if not (polygon.is_valid and polygon.area > 0):
        polygon = MultiPoint(np.column_stack([lon, lat])).convex_hull
    return _split_at_antimeridian(polygon)


def _split_at_antimeridian(geometry: BaseGeometry) -> BaseGeometry:
    """``geometry`` (degrees, longitudes possibly past +-180 after unwrapping) as its parts in
    [-180, 180]: a footprint across the antimeridian becomes two polygons that meet there (as GeoJSON,
    RFC 7946 section 3.1.9, asks), so plain longitude intervals find either side."""
    west, _, east, _ = geometry.bounds
    shift = -360.0 * np.floor((west + 180.0) / 360.0)
    if shift:
        geometry = shapely.affinity.translate(geometry, xoff=shift)
        west, east = west + shift, east + shift
    if east <= 180.0:
        return geometry
    inside = shapely.intersection(geometry, shapely.box(-180.0, -90.0, 180.0, 90.0))
    beyond = shapely.intersection(geometry, shapely.box(180.0, -90.0, 540.0, 90.0))
    return shapely.union(inside, shapely.affinity.translate(beyond, xoff=-360.0))


def _edges(lat: np.ndarray, lon: np.ndarray, step: int = 16) -> BaseGeometry:
    """Polygon from the boundary of 2-D geolocation arrays (rows x cols), subsampled every ``step``."""
    rows, cols = lat.shape
    r = np.unique(np.r_[np.arange(0, rows, step), rows - 1])
    c = np.unique(np.r_[np.arange(0, cols, step), cols - 1])
    return _ring(
        [lon[0, c], lon[r, -1], lon[-1, c[::-1]], lon[r[::-1], 0]],
        [lat[0, c], lat[r, -1], lat[-1, c[::-1]], lat[r[::-1], 0]],
    )


def _boundary_2d(var: netCDF4.Variable | h5py.Dataset) -> np.ndarray:
    """Read only the four edges of a 2-D variable, returned as a full-shape array with NaN inside.

    Fill values are NaN (:func:`decoded` for HDF5 datasets, ``netCDF4`` masking for NetCDF variables).
    """
    rows, cols = var.shape[-2:]
    out = np.full((rows, cols), np.nan)
    lead = (0,) * (len(var.shape) - 2)
    for index in ((0, slice(None)), (rows - 1, slice(None)), (slice(None), 0), (slice(None), cols - 1)):
        if isinstance(var, h5py.Dataset):
            out[index] = decoded(var, lead + index)
        else:
            out[index] = masked_to_nan(var[lead + index])
    return out


def _dataset(h5: h5py.File | h5py.Group, name: str, path: Path, expected: str) -> h5py.Dataset:
    found = h5.get(name)
    if not isinstance(found, h5py.Dataset):
        raise ProductFormatError(path, name, expected)
    return found


def describe_emit(path: Path, name: NativeName) -> list[GranuleSegment]:
    """EMIT L1B RAD: time from global attributes, footprint from the edges of ``location/lat, lon``."""
    with h5py.File(path, "r") as h5:
        check_required(h5, path, emit.REQUIRED_VARIABLES)
        try:
            start = parse_time(_text(h5.attrs["time_coverage_start"]))
            end = parse_time(_text(h5.attrs["time_coverage_end"]))
        except KeyError as error:
            raise ProductFormatError(path, "time_coverage_start/end", "global ISO 8601 attributes") from error
        expected = "location group with lat, lon (downtrack, crosstrack)"
        lat = _boundary_2d(_dataset(h5, "location/lat", path, expected))
        lon = _boundary_2d(_dataset(h5, "location/lon", path, expected))
        version = _text(h5.attrs["product_version"]) if "product_version" in h5.attrs else name.version
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


def num2date_utc(values: np.ndarray, units: str) -> np.ndarray:
    """CF time values with ``units`` (e.g. ``seconds since 2010-01-01``) as aware UTC datetimes."""
    stamps = netCDF4.num2date(values, units, only_use_cftime_datetimes=False, only_use_python_datetimes=True)
    return np.array([stamp.replace(tzinfo=UTC) for stamp in np.ravel(stamps)], dtype=object)


def describe_tropomi(path: Path, name: NativeName) -> list[GranuleSegment]:
    """TROPOMI L2 CH4: one row per block of scanlines; footprint from the block's edge pixels."""
    with h5py.File(path, "r") as h5:
        check_required(h5, path, tropomi.REQUIRED_VARIABLES)
        expected = "TROPOMI L2 CH4 layout"
        lat_all = decoded(_dataset(h5, "PRODUCT/latitude", path, expected), (0,))
        lon_all = decoded(_dataset(h5, "PRODUCT/longitude", path, expected), (0,))
        time_var = _dataset(h5, "PRODUCT/time", path, expected)
        if "units" not in time_var.attrs:
            raise ProductFormatError(path, "PRODUCT/time", "a CF 'units' attribute")
        (base,) = num2date_utc(np.asarray(time_var[0:1]), _text(time_var.attrs["units"]))
        delta_ms = decoded(_dataset(h5, "PRODUCT/delta_time", path, expected), (0,))
        version = _text(h5.attrs["processor_version"]) if "processor_version" in h5.attrs else name.version
    n_scan, n_pix = lat_all.shape
    cols = np.unique([0, *range(0, n_pix, 16), n_pix - 1])
    segments = []
    for index, first in enumerate(range(0, n_scan, TROPOMI_SEGMENT_SCANLINES)):
        last = min(first + TROPOMI_SEGMENT_SCANLINES, n_scan) - 1
        rows = np.unique([first, *range(first, last + 1, 16), last])
        times = delta_ms[first : last + 1]
        if not np.isfinite(times).any():
            continue
        t0 = base + pd.Timedelta(milliseconds=float(np.nanmin(times))).to_pytimedelta()
        t1 = base + pd.Timedelta(milliseconds=float(np.nanmax(times))).to_pytimedelta()
        try:
            footprint = _edges(lat_all[np.ix_(rows, cols)], lon_all[np.ix_(rows, cols)], step=1)
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


def describe_oco2(path: Path, name: NativeName) -> list[GranuleSegment]:
    """OCO-2 Lite: the day's soundings split into along-track runs of at most ``OCO2_SEGMENT_KM``
    (a new run at every gap over ``OCO2_GAP_KM`` or antimeridian crossing); each footprint is the
    convex hull of the run's sounding centres grown by ``OCO2_SWATH_BUFFER_DEG``."""
    with h5py.File(path, "r") as h5:
        check_required(h5, path, oco2.REQUIRED_VARIABLES)
        expected = "OCO-2 Lite root variable"
        lat = decoded(_dataset(h5, "latitude", path, expected))
        lon = decoded(_dataset(h5, "longitude", path, expected))
        seconds = decoded(_dataset(h5, "time", path, expected))
        version = _text(h5.attrs["BuildId"]) if "BuildId" in h5.attrs else name.version
    good = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(seconds) & (np.abs(lat) <= 90)
    lat, lon, seconds = lat[good], lon[good], seconds[good]
    order = np.argsort(seconds, kind="stable")
    lat, lon, seconds = lat[order], lon[order], seconds[order]
    if lat.size == 0:
        raise ProductFormatError(path, "latitude/longitude", "at least one finite sounding position")
    step = haversine_km(lon[:-1], lat[:-1], lon[1:], lat[1:])
    run = np.r_[0, np.cumsum((step > OCO2_GAP_KM) | (np.abs(np.diff(lon)) > 180))]
    along = np.r_[0.0, np.cumsum(np.where(np.diff(run) > 0, 0.0, step))]
    run_start_km = along[np.r_[0, np.flatnonzero(np.diff(run)) + 1]][run]
    piece_key = run * (1 << 32) + np.floor((along - run_start_km) / OCO2_SEGMENT_KM).astype(np.int64)
    _, piece = np.unique(piece_key, return_inverse=True)
    hulls = shapely.convex_hull(shapely.multipoints(np.column_stack([lon, lat]), indices=piece))
    buffered = shapely.buffer(hulls, OCO2_SWATH_BUFFER_DEG, quad_segs=4)
    footprints = [_split_at_antimeridian(footprint) for footprint in buffered]
    first = np.r_[0, np.flatnonzero(np.diff(piece)) + 1]
    last = np.r_[first[1:], piece.size] - 1
    counts = last - first + 1
    return [
        GranuleSegment(
            f"{name.granule}#{k:04d}",
            "OCO2",
            name.product,
            version,
            name.processing,
            datetime.fromtimestamp(float(seconds[first[k]]), UTC),
            datetime.fromtimestamp(float(seconds[last[k]]), UTC),
            footprints[k],
            int(counts[k]),
        )
        for k in range(first.size)
    ]


def describe_wrf(path: Path, name: NativeName) -> list[GranuleSegment]:
    """WRF output: domain outline from the edges of XLAT/XLONG, times from ``Times``."""
    check_complete(path)
    with netCDF4.Dataset(path) as nc:
        check_required(nc, path, wrf.REQUIRED_VARIABLES)
        try:
            lat = _boundary_2d(nc.variables["XLAT"])
            lon = _boundary_2d(nc.variables["XLONG"])
            times = [b"".join(row).decode() for row in np.asarray(nc.variables["Times"][:])]
        except KeyError as error:
            raise ProductFormatError(path, error.args[0], "WRF output variable") from error
    stamps = [datetime.strptime(t, WRF_TIME_FORMAT).replace(tzinfo=UTC) for t in times]
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


def _describe_ghgsat(path: Path, h5: h5py.File) -> list[GranuleSegment]:
    """GHGSat L2 (``ghgsat_l2_v1``): times from root attributes, footprint from the geolocation edges."""
    for key in ("time_coverage_start", "time_coverage_end", "schema_version"):
        if key not in h5.attrs:
            raise ProductFormatError(path, key, "root attribute of the ghgsat_l2_v1 schema")
    check_required(h5, path, ghgsat.REQUIRED_VARIABLES)
    expected = "datasets (y, x)"
    lat = _boundary_2d(_dataset(h5, "geolocation/latitude", path, expected))
    lon = _boundary_2d(_dataset(h5, "geolocation/longitude", path, expected))
    start = parse_time(_text(h5.attrs["time_coverage_start"]))
    end = parse_time(_text(h5.attrs["time_coverage_end"]))
    satellite = _text(h5.attrs["satellite"]) if "satellite" in h5.attrs else "unknown"
    return [
        GranuleSegment(
            f"GHGSAT_{satellite}_{start:%Y%m%dT%H%M%S}",
            "GHGSAT",
            "L2",
            _text(h5.attrs["schema_version"]),
            "",
            start,
            end,
            _edges(lat, lon),
            int(lat.size),
        )
    ]


_Era5Coords = tuple[np.ndarray, np.ndarray, np.ndarray]


def _era5_coords(handle: h5py.File | netCDF4.Dataset, path: Path, wind: bool = True) -> _Era5Coords | None:
    """(times, latitudes, longitudes in [-180, 180)) of an ERA5 file, or ``None`` when the layout is
    not ERA5 (see :func:`readers.era5.era5_layout`). Checks the fields' units and, with ``wind``, that
    the 10 m wind is there (a zip member may hold other fields only)."""
    hdf5 = isinstance(handle, h5py.File)
    names = set(handle.keys()) if hdf5 else set(handle.variables)
    if not era5_layout(_dimensions(handle), names):
        return None
    time_name = "valid_time" if "valid_time" in names else "time"
    coords = {name: find_variable(handle, name) for name in (time_name, "latitude", "longitude")}
    for name, var in coords.items():
        if var is None:  # the dimension without its coordinate variable
            raise ProductFormatError(path, name, "variable present")
    check_required(handle, path, required_variables(names, wind))
    time_var = coords[time_name]
    units = time_var.attrs.get("units") if hdf5 else getattr(time_var, "units", None)
    if units is None:
        raise ProductFormatError(path, time_name, "a CF 'units' attribute")
    times = num2date_utc(np.asarray(time_var[:]), _text(units))
    lat = np.asarray(handle["latitude"][:], float)
    lon = normalise_lon(handle["longitude"][:])
    return times, lat, lon


@contextmanager
def open_netcdf(source: Path | bytes, path: Path) -> Iterator[h5py.File | netCDF4.Dataset | None]:
    """Open a netCDF-4/HDF5 file (h5py) or a NetCDF-3 file (netCDF4) from a path or bytes; ``None``
    when the content is neither."""
    head = source[:8] if isinstance(source, bytes) else _head(source)
    if head.startswith(NETCDF3_SIGNATURE):
        if not isinstance(source, bytes):
            check_complete(source)
        kwargs = {"memory": source} if isinstance(source, bytes) else {}
        with netCDF4.Dataset(path.name if isinstance(source, bytes) else source, **kwargs) as nc:
            yield nc
    elif head.startswith(_HDF5_SIGNATURE) or (not isinstance(source, bytes) and h5py.is_hdf5(source)):
        with h5py.File(io.BytesIO(source) if isinstance(source, bytes) else source, "r") as h5:
            yield h5
    else:
        yield None


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(8)


def _era5_segment(path: Path, parts: list[_Era5Coords]) -> list[GranuleSegment]:
    """One catalog row for an ERA5 download: the grid's extent and the hours it holds."""
    times = np.concatenate([part[0] for part in parts])
    lat = np.concatenate([part[1] for part in parts])
    lon = np.concatenate([part[2] for part in parts])
    return [
        GranuleSegment(
            f"ERA5_{path.stem}",
            "ERA5",
            "REANALYSIS_SINGLE_LEVELS",
            "",
            "",
            min(times),
            max(times),
            _grid_extent(lon, float(np.min(lat)), float(np.max(lat))),
            len(times),
        )
    ]


def _grid_extent(lon: np.ndarray, south: float, north: float) -> BaseGeometry:
    """The extent of a regular longitude grid (degrees, in [-180, 180)) from ``south`` to ``north``:
    every longitude when its columns go round the globe, else from the column after its widest gap
    to the column before it, split at the antimeridian when the grid crosses it (a CDS download
    across 180 degrees comes back as columns near -180 and near 180)."""
    columns = np.unique(lon)
    if columns.size < 2:
        return shapely.box(columns[0], south, columns[0], north)
    gaps = np.diff(np.append(columns, columns[0] + 360.0))
    widest = int(np.argmax(gaps))
    if gaps[widest] <= 1.5 * np.median(gaps):  # float32 columns: steps differ by ~1e-4 of a step
        return shapely.box(-180.0, south, 180.0, north)
    west = columns[(widest + 1) % columns.size]
    east = columns[widest] + (360.0 if widest + 1 < columns.size else 0.0)
    return _split_at_antimeridian(shapely.box(west, south, east, north))


def _describe_era5_zip(path: Path) -> list[GranuleSegment] | None:
    """A CDS zip (one NetCDF member per step type): ERA5 when a member holds an ERA5 field. A member
    on the ERA5 grid with no field the reader uses (a requested precipitation or gust field) is
    skipped, as :func:`~attribution_assets.readers.era5.read_era5` skips it; a member that is not a
    NetCDF file on that grid, or an ERA5 zip without the 10 m wind, makes the reader, and so the
    crawl, refuse it."""
    parts: list[_Era5Coords] = []
    names: set[str] = set()
    foreign: list[str] = []
    with zipfile.ZipFile(path) as archive:
        members = [name for name in archive.namelist() if name.endswith(".nc")]
        for member in members:
            with open_netcdf(archive.read(member), path) as handle:
                dims = set() if handle is None else _dimensions(handle)
                if not era5_grid(dims):
                    foreign.append(member)
                    continue
                names |= set(handle.keys() if isinstance(handle, h5py.File) else handle.variables)
                coords = _era5_coords(handle, path, wind=False)
            if coords is not None:
                parts.append(coords)
    if not parts:  # no member holds a field the reader uses: another product on a lat/lon grid
        return None
    if foreign:
        raise ProductFormatError(path, foreign[0], "a NetCDF member on the ERA5 grid (valid_time|time, "
                                 "latitude, longitude), like the zip's other members")
    for name in WIND_FIELDS:
        if name not in names:
            raise ProductFormatError(path, name, "the 10 m wind field in one of the zip's NetCDF members")
    return _era5_segment(path, parts)


def _dimensions(handle: h5py.File | netCDF4.Dataset) -> set[str]:
    """Dimension names of a NetCDF file (netCDF-4 read with h5py: its dimension-scale variables)."""
    if isinstance(handle, h5py.File):
        return set(handle.keys())
    return set(handle.dimensions)


def describe_by_content(path: Path) -> list[GranuleSegment] | None:
    """Catalog segments of a file whose name is user-chosen, recognised by content in one open:
    GHGSat L2 (``.h5``/``.he5``/``.hdf5`` with root attribute ``product="GHGSat_L2"``) or an ERA5 CDS
    download (``.nc``/``.nc4``/``.zip`` with the ERA5 layout). ``None`` when it is neither (a file
    that is not HDF5/NetCDF at all, or another product). A zero-byte file with one of these suffixes is
    an interrupted download or delivery, never a product: :class:`ProductFormatError`."""
    suffix = path.suffix.lower()
    is_ghgsat, is_era5 = suffix in GHGSAT_SUFFIXES, suffix in ERA5_SUFFIXES
    if not (is_ghgsat or is_era5):
        return None
    if path.stat().st_size == 0:
        raise ProductFormatError(path, "<file>", "a GHGSat L2 HDF5 or ERA5 NetCDF file, found 0 bytes")
    if is_era5 and _head(path).startswith(_ZIP_SIGNATURE):
        return _describe_era5_zip(path)
    with open_netcdf(path, path) as handle:
        if handle is None:
            return None
        product = _text(handle.attrs.get("product", "")) if isinstance(handle, h5py.File) else ""
        if is_ghgsat and product == "GHGSat_L2":
            return _describe_ghgsat(path, handle)
        coords = _era5_coords(handle, path) if is_era5 else None
    return None if coords is None else _era5_segment(path, [coords])
