"""EMIT L1B at-sensor radiance (``EMITL1BRAD`` V001, NetCDF-4 with groups), read by AOI window.

Layout (NASA LP DAAC EMIT L1B RAD V001; emit-sds writers; EMIT-Data-Resources): root
``radiance(downtrack, crosstrack, bands)`` in uW/cm^2/SR/nm with fill -9999; group
``sensor_band_parameters`` with ``wavelengths``/``fwhm`` (nm); group ``location`` with ``lat``,
``lon``, ``elev`` (downtrack, crosstrack) and the geometry lookup table ``glt_x``/``glt_y``
(ortho_y, ortho_x), 1-based, 0 = no data (V001 also declares ``_FillValue=-9999``). The global
``geotransform`` (GDAL order) places ortho pixel ``(i, j)`` at centre
``lon = GT[0] + (j + 0.5) GT[1]``, ``lat = GT[3] + (i + 0.5) GT[5]``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import partial

import netCDF4
import numpy as np
import xarray as xr

from attribution_assets.readers.bbox import BBox, longitude_copies
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.layout import Required, check_required
from attribution_assets.readers.template import provenance_attrs, read_product
from attribution_assets.times import iso_z

RADIANCE_UNITS = "uW/cm^2/SR/nm"
_FILL = -9999.0
_REQUIRED = {
    "": ("radiance",),
    "sensor_band_parameters": ("wavelengths", "fwhm"),
    "location": ("lat", "lon", "glt_x", "glt_y"),
}
REQUIRED_VARIABLES = tuple(
    Required(f"{group}/{name}".lstrip("/"), (RADIANCE_UNITS,) if name == "radiance" else None)
    for group, names in _REQUIRED.items()
    for name in names
)
"""The variables (path, units, numeric values) without which :func:`read_emit_l1b` rejects a file."""


def _group(nc: netCDF4.Dataset, path: str | os.PathLike[str], name: str) -> netCDF4.Dataset:
    if not name:
        return nc
    if name not in nc.groups:
        raise ProductFormatError(path, f"/{name}", "NetCDF group present")
    return nc.groups[name]


def _check_layout(nc: netCDF4.Dataset, path: str | os.PathLike[str]) -> None:
    """Raise ProductFormatError unless the groups, variables, units and attributes are present."""
    for group_name, names in _REQUIRED.items():
        group = _group(nc, path, group_name)
        for name in names:
            if name not in group.variables:
                raise ProductFormatError(path, f"{group_name}/{name}".lstrip("/"), "variable present")
    units = getattr(nc.variables["radiance"], "units", None)
    if units != RADIANCE_UNITS:
        raise ProductFormatError(path, "radiance", f"units {RADIANCE_UNITS!r}, found {units!r}")
    if nc.variables["radiance"].dimensions != ("downtrack", "crosstrack", "bands"):
        raise ProductFormatError(path, "radiance", "dimensions (downtrack, crosstrack, bands)")
    if nc.groups["location"].variables["glt_x"].dimensions != ("ortho_y", "ortho_x"):
        raise ProductFormatError(path, "location/glt_x", "dimensions (ortho_y, ortho_x)")
    for attr in ("geotransform", "time_coverage_start", "time_coverage_end"):
        if attr not in nc.ncattrs():
            raise ProductFormatError(path, attr, "global attribute present")
    if np.size(nc.getncattr("geotransform")) != 6:
        raise ProductFormatError(path, "geotransform", "6 GDAL geotransform coefficients")
    check_required(nc, path, REQUIRED_VARIABLES)


def _axis_window(origin: float, step: float, n: int, lo: float, hi: float) -> slice:
    """Indices of grid cells (edges ``origin + k*step``) that overlap [lo, hi]; may be empty."""
    a = (lo - origin) / step
    b = (hi - origin) / step
    first, last = min(a, b), max(a, b)
    start = max(int(math.floor(first)), 0)
    stop = min(int(math.ceil(last)), n)
    if stop == start and first == last and 0 <= start < n:
        stop = start + 1  # a degenerate bbox on a pixel edge still selects that pixel
    return slice(start, max(stop, start))


def ortho_window(gt: Sequence[float], shape: tuple[int, int], bbox: BBox | None) -> tuple[slice, slice]:
    """The (ortho_y, ortho_x) slices of the grid cells that overlap ``bbox`` (whole grid when None).

    Longitudes are compared modulo 360: of ``bbox`` and its copies shifted by 360 degrees either way
    (:func:`~attribution_assets.readers.bbox.longitude_copies`), the one that overlaps the grid most
    is used, so a box in [0, 360) longitudes or across the antimeridian finds the scene."""
    ny, nx = shape
    if bbox is None:
        return slice(0, ny), slice(0, nx)
    south, north = bbox[1], bbox[3]
    rows = _axis_window(gt[3], gt[5], ny, south, north)
    grid_west, grid_east = sorted((gt[0], gt[0] + nx * gt[1]))

    def overlap(copy: BBox) -> float:
        return min(copy[2], grid_east) - max(copy[0], grid_west)

    west, _, east, _ = max(longitude_copies(bbox), key=overlap)
    cols = _axis_window(gt[0], gt[1], nx, west, east)
    return rows, cols


def _read_glt(loc: netCDF4.Dataset, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0-based (downtrack, crosstrack) int32 indices for the ortho window and where they hold data.

    Index arrays stay int32 and are shifted in place: a full scene's GLT is ~2.6 million pixels, and
    every whole-array pass over it costs a few milliseconds.
    """
    out = []
    for name in ("glt_y", "glt_x"):
        var = loc.variables[name]
        var.set_auto_mask(False)
        out.append(np.array(var[rows, cols], dtype=np.int32))
    gy, gx = out
    valid = (gy > 0) & (gx > 0)
    gy -= 1
    gx -= 1
    return gy, gx, valid


def _read_float(var: netCDF4.Variable, index: tuple[slice, ...]) -> np.ndarray:
    """Read a float slab as float32/float64 with the fill value (and -9999) replaced by NaN."""
    var.set_auto_mask(False)
    values = np.asarray(var[index])
    fills = {_FILL, float(getattr(var, "_FillValue", _FILL))}
    if values.size and values.dtype.kind == "f":
        low, high = values.min(), values.max()  # NaN propagates: then the full test below runs
        if not np.isnan(low) and all(f < low or f > high for f in fills):
            return values  # no fill value in range: two reductions instead of a mask over the slab
    is_fill = np.zeros(values.shape, dtype=bool)
    for fill in fills:
        is_fill |= values == fill
    values[is_fill] = np.nan
    return values


def band_window(wavelength_nm: np.ndarray, window_nm: tuple[float, float] | None) -> slice:
    """The contiguous band slice whose centres lie inside ``window_nm`` (inclusive, nm); all if None."""
    if window_nm is None:
        return slice(0, wavelength_nm.size)
    inside = np.flatnonzero((wavelength_nm >= window_nm[0]) & (wavelength_nm <= window_nm[1]))
    if inside.size == 0:
        return slice(0, 0)
    return slice(int(inside[0]), int(inside[-1]) + 1)


def _ortho_coords(gt: Sequence[float], rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """Ortho pixel centre latitudes (rows) and longitudes (cols) in degrees."""
    i = np.arange(rows.start, rows.stop, dtype=np.float64)
    j = np.arange(cols.start, cols.stop, dtype=np.float64)
    return gt[3] + (i + 0.5) * gt[5], gt[0] + (j + 0.5) * gt[1]


def _scene_window(
    path: str | os.PathLike[str],
    row: np.ndarray,
    col: np.ndarray,
    valid: np.ndarray,
    shape: tuple[int, int],
    bbox: BBox | None,
) -> tuple[slice, slice]:
    """The smallest (downtrack, crosstrack) slab holding every scene pixel the GLT window references."""
    if not valid.any():
        raise EmptyAOIError(path, bbox, "no GLT pixel with data in the window")
    big = np.iinfo(np.int32).max
    r0, r1 = int(np.min(row, where=valid, initial=big)), int(np.max(row, where=valid, initial=-1))
    c0, c1 = int(np.min(col, where=valid, initial=big)), int(np.max(col, where=valid, initial=-1))
    if r1 >= shape[0] or c1 >= shape[1]:
        raise ProductFormatError(path, "location/glt_y", f"GLT indices within the radiance shape {shape}")
    return slice(r0, r1 + 1), slice(c0, c1 + 1)


def _build_dataset(
    nc: netCDF4.Dataset,
    path: str | os.PathLike[str],
    bbox: BBox | None,
    window_nm: tuple[float, float] | None,
) -> xr.Dataset:
    gt = [float(v) for v in np.ravel(nc.getncattr("geotransform"))]
    loc = nc.groups["location"]
    ortho_shape = loc.variables["glt_x"].shape
    rows, cols = ortho_window(gt, ortho_shape, bbox)
    if rows.stop <= rows.start or cols.stop <= cols.start:
        raise EmptyAOIError(path, bbox, "bbox outside the orthorectified grid")
    glt_row, glt_col, valid = _read_glt(loc, rows, cols)
    rad_var = nc.variables["radiance"]
    down, cross = _scene_window(path, glt_row, glt_col, valid, rad_var.shape[:2], bbox)
    for index, start in ((glt_row, down.start), (glt_col, cross.start)):
        index -= start
        np.copyto(index, -1, where=~valid)
    band = nc.groups["sensor_band_parameters"]
    wavelength = _read_float(band.variables["wavelengths"], (slice(None),))
    bands = band_window(wavelength, window_nm)
    if bands.stop <= bands.start:
        raise EmptyAOIError(path, bbox, f"no band centre inside {window_nm} nm")
    radiance = _read_float(rad_var, (down, cross, bands)).astype(np.float32, copy=False)
    y_lat, x_lon = _ortho_coords(gt, rows, cols)
    coords = {
        "wavelength": ("band", wavelength[bands], {"units": "nm", "long_name": "band centre wavelength"}),
        "fwhm": (
            "band",
            _read_float(band.variables["fwhm"], (bands,)),
            {"units": "nm", "long_name": "band full width at half maximum"},
        ),
        "lat": (
            ("downtrack", "crosstrack"),
            _read_float(loc.variables["lat"], (down, cross)),
            {"units": "degrees_north", "long_name": "pixel centre latitude"},
        ),
        "lon": (
            ("downtrack", "crosstrack"),
            _read_float(loc.variables["lon"], (down, cross)),
            {"units": "degrees_east", "long_name": "pixel centre longitude"},
        ),
        "y_lat": ("y", y_lat, {"units": "degrees_north", "long_name": "ortho pixel centre latitude"}),
        "x_lon": ("x", x_lon, {"units": "degrees_east", "long_name": "ortho pixel centre longitude"}),
    }
    data_vars = {
        "radiance": (
            ("downtrack", "crosstrack", "band"),
            radiance,
            {"units": RADIANCE_UNITS, "long_name": "at-sensor spectral radiance"},
        ),
        "glt_row": (
            ("y", "x"),
            glt_row,
            {"units": "1", "long_name": "0-based downtrack index into radiance, -1 = no data"},
        ),
        "glt_col": (
            ("y", "x"),
            glt_col,
            {"units": "1", "long_name": "0-based crosstrack index into radiance, -1 = no data"},
        ),
    }
    if "elev" in loc.variables:
        data_vars["elev"] = (
            ("downtrack", "crosstrack"),
            _read_float(loc.variables["elev"], (down, cross)),
            {"units": "m", "long_name": "surface elevation"},
        )
    window_gt = [gt[0] + cols.start * gt[1], gt[1], gt[2], gt[3] + rows.start * gt[5], gt[4], gt[5]]
    attrs = {
        **provenance_attrs(
            path,
            str(getattr(nc, "product_version", "unknown")),
            str(getattr(nc, "instrument", "EMIT")),
            iso_z(str(nc.getncattr("time_coverage_start"))),
            iso_z(str(nc.getncattr("time_coverage_end"))),
        ),
        "platform": str(getattr(nc, "platform", "ISS")),
        "flight_line": str(getattr(nc, "flight_line", "")),
        "geotransform": window_gt,
        "ortho_offset_yx": [rows.start, cols.start],
        "scene_offset_downtrack_crosstrack": [down.start, cross.start],
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def read_emit_l1b(
    path: str | os.PathLike[str],
    bbox: Sequence[float] | None = None,
    window_nm: tuple[float, float] | None = None,
) -> xr.Dataset:
    """Read the part of an EMIT L1B RAD V001 scene that covers ``bbox`` (west, south, east, north; deg).

    Only the radiance slab referenced by the GLT inside the bbox window is read from disk, and with
    ``window_nm`` (nm, inclusive) only the contiguous bands whose centres lie inside it (e.g. the CH4
    matched-filter window, 48 of 285 bands: a full scene then reads 0.3 instead of 1.8 GB). Returns
    ``radiance(downtrack, crosstrack, band)`` in uW/cm^2/SR/nm (fill -> NaN), coords ``wavelength``,
    ``fwhm`` (nm), ``lat``, ``lon`` (degrees), ``y_lat(y)``, ``x_lon(x)`` ortho pixel centres, optional
    ``elev`` (m), and ``glt_row``/``glt_col(y, x)`` int32 0-based into the returned slab (-1 = no data).
    Attributes: provenance (docs/carriers.md), ``geotransform`` of the returned ortho window,
    ``ortho_offset_yx`` and ``scene_offset_downtrack_crosstrack`` (where the window sits in the file).

    Raises ProductFormatError for an unreadable file or a missing/wrong variable, EmptyAOIError when
    the bbox misses the scene, only covers GLT no-data pixels, or ``window_nm`` holds no band.
    """
    return read_product(
        path,
        bbox,
        partial(netCDF4.Dataset, mode="r"),
        "NetCDF-4",
        _check_layout,
        partial(_build_dataset, window_nm=window_nm),
    )
