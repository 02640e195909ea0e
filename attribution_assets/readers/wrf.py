"""Reader for WRF model output (``wrfout_d0N_YYYY-MM-DD_HH:MM:SS``, NetCDF).

WRF (Skamarock et al. 2019, NCAR/TN-556+STR, "A Description of the Advanced Research WRF Model
Version 4") writes on an Arakawa C grid: ``U`` lives on the west/east faces of the mass cells
(``west_east_stag`` = nx + 1) and ``V`` on the south/north faces (``south_north_stag`` = ny + 1).
The wind at a mass point is the mean of its two neighbouring faces. ``Times`` is a character array
``(Time, DateStrLen)`` holding ``YYYY-MM-DD_HH:MM:SS``. Winds are grid-relative; where the file has
``COSALPHA``/``SINALPHA`` they are rotated to earth-relative components
(``u_e = u cos(a) - v sin(a)``, ``v_e = v cos(a) + u sin(a)``, as in WRF's own diagnostics).

Output carrier (dims ``time, bottom_top, south_north, west_east``):
``u10, v10`` m s-1, ``u, v`` m s-1 at mass points, ``u_bl, v_bl`` m s-1 (lowest model level, the
boundary-layer proxy), ``pblh`` m, ``psfc`` Pa, ``hgt`` m, optional ``hfx`` W m-2 (upward), ``t2`` K,
``znt`` m; coords ``time`` (datetime64[ns] UTC), ``lat, lon(south_north, west_east)`` degrees.
Globals ``DX, DY, MAP_PROJ, CEN_LAT, CEN_LON, TRUELAT1, TRUELAT2, STAND_LON`` are copied.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime

import netCDF4
import numpy as np
import xarray as xr

from attribution_assets.readers.bbox import in_bbox, normalise_lon, validate_bbox
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.layout import TEXT, Required, check_complete, check_required
from attribution_assets.readers.template import provenance_attrs
from attribution_assets.times import iso_z

WRF_TIME_FORMAT = "%Y-%m-%d_%H:%M:%S"
WRF_FILENAME_RE = re.compile(
    r"^wrfout_d(?P<domain>\d{2})_(?P<start>\d{4}-\d{2}-\d{2}_\d{2}[:_]\d{2}[:_]\d{2})"
)
GLOBAL_ATTRS = ("DX", "DY", "MAP_PROJ", "CEN_LAT", "CEN_LON", "TRUELAT1", "TRUELAT2", "STAND_LON")
_MASS_2D = {"U10": ("u10", "m s-1", "10 m eastward wind"), "V10": ("v10", "m s-1", "10 m northward wind"),
            "PBLH": ("pblh", "m", "planetary boundary layer height"),
            "PSFC": ("psfc", "Pa", "surface pressure"), "HGT": ("hgt", "m", "terrain height")}
_UNITS = {"U": "m s-1", "V": "m s-1", "U10": "m s-1", "V10": "m s-1", "PBLH": "m", "PSFC": "Pa", "HGT": "m"}
REQUIRED_VARIABLES = (
    Required("Times", kind=TEXT),
    *(
        Required(name, (_UNITS[name],) if name in _UNITS else None)
        for name in ("XLAT", "XLONG", "U", "V", *_MASS_2D)
    ),
)
"""The variables (name, units, kind of values) without which :func:`read_wrf` rejects a file."""
_OPTIONAL_2D = {"HFX": ("hfx", "W m-2", "upward surface sensible heat flux"),
                "T2": ("t2", "K", "2 m temperature"), "ZNT": ("znt", "m", "roughness length")}


def parse_wrf_filename(name: str) -> tuple[int, datetime] | None:
    """``(domain, start)`` of a native ``wrfout_d0N_YYYY-MM-DD_HH:MM:SS`` name (``:`` or ``_``), else None."""
    match = WRF_FILENAME_RE.match(os.path.basename(name))
    if match is None:
        return None
    text = match["start"]
    start = datetime.strptime(f"{text[:13]}:{text[14:16]}:{text[17:19]}", WRF_TIME_FORMAT)
    return int(match["domain"]), start


def _variable(nc: netCDF4.Dataset, path: str, name: str, ndim: int) -> netCDF4.Variable:
    if name not in nc.variables:
        raise ProductFormatError(path, name, f"a {ndim}-D variable in a wrfout file")
    var = nc.variables[name]
    if var.ndim != ndim:
        raise ProductFormatError(path, name, f"{ndim} dimensions, found {var.dimensions}")
    var.set_auto_mask(False)
    return var


def _times(nc: netCDF4.Dataset, path: str) -> np.ndarray:
    var = _variable(nc, path, "Times", 2)
    var.set_auto_chartostring(False)
    try:
        text = netCDF4.chartostring(np.asarray(var[:]))
        parsed = [datetime.strptime(str(s).strip(), WRF_TIME_FORMAT) for s in np.atleast_1d(text)]
    except (ValueError, TypeError) as exc:
        raise ProductFormatError(path, "Times", f"character strings {WRF_TIME_FORMAT!r} ({exc})") from None
    return np.array(parsed, dtype="datetime64[ns]")


def _window(path: str, lon: np.ndarray, lat: np.ndarray, bbox: Sequence[float] | None) -> tuple[slice, slice]:
    box = validate_bbox(path, bbox)
    if box is None:
        return slice(0, lon.shape[0]), slice(0, lon.shape[1])
    inside = in_bbox(lon, lat, box)
    if not np.any(inside):
        raise EmptyAOIError(path, bbox, "no WRF mass point inside the bbox")
    rows, cols = np.nonzero(inside)
    return slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)


def destagger(values: np.ndarray, axis: int) -> np.ndarray:
    """Mass-point values from a staggered axis: the mean of the two neighbouring faces."""
    values = np.asarray(values)
    lower = np.take(values, np.arange(values.shape[axis] - 1), axis=axis)
    upper = np.take(values, np.arange(1, values.shape[axis]), axis=axis)
    return 0.5 * (lower + upper)


def _rotate(u: np.ndarray, v: np.ndarray, cos_a: np.ndarray | None, sin_a: np.ndarray | None):
    if cos_a is None or sin_a is None:
        return u, v
    return u * cos_a - v * sin_a, v * cos_a + u * sin_a


def _staggered_winds(nc: netCDF4.Dataset, path: str, nx: int, ny: int, rows: slice, cols: slice):
    u = _variable(nc, path, "U", 4)
    v = _variable(nc, path, "V", 4)
    if u.shape[2:] != (ny, nx + 1):
        raise ProductFormatError(path, "U", f"(Time, bottom_top, south_north={ny}, west_east_stag={nx + 1}), "
                                            f"found shape {u.shape}")
    if v.shape[2:] != (ny + 1, nx):
        raise ProductFormatError(path, "V", f"(Time, bottom_top, south_north_stag={ny + 1}, west_east={nx}), "
                                            f"found shape {v.shape}")
    u_mass = destagger(u[:, :, rows, cols.start:cols.stop + 1], axis=3)
    v_mass = destagger(v[:, :, rows.start:rows.stop + 1, cols], axis=2)
    return u_mass, v_mass


def read_wrf(path: str | os.PathLike[str], bbox: Sequence[float] | None = None) -> xr.Dataset:
    """Read a wrfout file into the WRF carrier (see the module docstring), cut to ``bbox``.

    ``bbox = (west, south, east, north)`` in degrees selects the smallest index window holding every
    mass point inside it. Raises :class:`ProductFormatError` for a missing or mis-shaped variable and
    :class:`EmptyAOIError` when no mass point lies inside ``bbox``.
    """
    path = str(path)
    try:
        check_complete(path)
        nc = netCDF4.Dataset(path)
    except OSError as exc:
        raise ProductFormatError(path, "<file>", f"a readable NetCDF wrfout file ({exc})") from None
    with nc:
        check_required(nc, path, REQUIRED_VARIABLES)
        times = _times(nc, path)
        lat_all = np.asarray(_variable(nc, path, "XLAT", 3)[0], np.float64)
        lon_all = normalise_lon(_variable(nc, path, "XLONG", 3)[0])
        ny, nx = lat_all.shape
        rows, cols = _window(path, lon_all, lat_all, bbox)
        has_rotation = "COSALPHA" in nc.variables and "SINALPHA" in nc.variables
        cos_a = np.asarray(_variable(nc, path, "COSALPHA", 3)[:, rows, cols]) if has_rotation else None
        sin_a = np.asarray(_variable(nc, path, "SINALPHA", 3)[:, rows, cols]) if has_rotation else None
        fields = {}
        for name, (out, units, long_name) in {**_MASS_2D, **_OPTIONAL_2D}.items():
            if name in _OPTIONAL_2D and name not in nc.variables:
                continue
            var = _variable(nc, path, name, 3)
            if var.shape[1:] != (ny, nx):
                expected = f"(Time, south_north={ny}, west_east={nx}), found {var.shape}"
                raise ProductFormatError(path, name, expected)
            fields[out] = (("time", "south_north", "west_east"), np.asarray(var[:, rows, cols]),
                           {"units": units, "long_name": long_name})
        u, v = _staggered_winds(nc, path, nx, ny, rows, cols)
        globals_ = {k: nc.getncattr(k) for k in GLOBAL_ATTRS if k in nc.ncattrs()}
        title = str(nc.getncattr("TITLE")) if "TITLE" in nc.ncattrs() else "unknown"
    u10, v10 = _rotate(fields["u10"][1], fields["v10"][1], cos_a, sin_a)
    fields["u10"] = (fields["u10"][0], u10, fields["u10"][2])
    fields["v10"] = (fields["v10"][0], v10, fields["v10"][2])
    if has_rotation:
        u, v = _rotate(u, v, cos_a[:, None], sin_a[:, None])
    dims3 = ("time", "bottom_top", "south_north", "west_east")
    fields["u"] = (dims3, u, {"units": "m s-1", "long_name": "eastward wind at mass points"})
    fields["v"] = (dims3, v, {"units": "m s-1", "long_name": "northward wind at mass points"})
    dims2 = ("time", "south_north", "west_east")
    fields["u_bl"] = (dims2, u[:, 0], {"units": "m s-1", "long_name": "lowest model level eastward wind"})
    fields["v_bl"] = (dims2, v[:, 0], {"units": "m s-1", "long_name": "lowest model level northward wind"})
    parsed = parse_wrf_filename(path)
    attrs = {
        **provenance_attrs(path, title, "WRF", iso_z(times[0]), iso_z(times[-1])),
        **{k: (val.item() if isinstance(val, np.generic) else val) for k, val in globals_.items()},
        "domain": parsed[0] if parsed else -1,
        "window_south_north_start": rows.start, "window_west_east_start": cols.start,
        "winds_rotated_to_earth": int(has_rotation),
    }
    coords = {
        "time": ("time", times),
        "lat": (dims2[1:], lat_all[rows, cols], {"units": "degrees_north", "long_name": "latitude"}),
        "lon": (dims2[1:], lon_all[rows, cols], {"units": "degrees_east", "long_name": "longitude"}),
    }
    return xr.Dataset(fields, coords=coords, attrs=attrs)
