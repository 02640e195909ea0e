"""ERA5 single-level fields as delivered by the Copernicus CDS (cdsapi), for one AOI.

Accepted layouts (ECMWF "GRIB to netCDF conversion on the new CDS"; cdsapi):
- current CDS: dims ``valid_time`` (int64 s since 1970-01-01), ``latitude`` (decreasing), ``longitude``;
  ``expver(valid_time)`` strings;
- old CDS: ``time`` (hours since 1900-01-01), int16 packed fields, optionally an ``expver`` dimension
  (ERA5 and ERA5T side by side, one of them NaN per time): combined by taking the first non-NaN;
- a zip of ``*stepType-instant.nc`` and ``*stepType-accum.nc`` (merged).
Longitudes in [0, 360) are mapped to [-180, 180); output latitude increases.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence

import numpy as np
import xarray as xr

from attribution_assets.readers.bbox import BBox, normalise_lon, validate_bbox
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.layout import Required, check_complete
from attribution_assets.readers.template import provenance_attrs
from attribution_assets.times import iso_z

# short name -> (accepted units spellings, carrier units, long_name)
FIELDS = {
    "u10": (("m s**-1", "m s-1", "m/s"), "m s-1", "10 m eastward wind"),
    "v10": (("m s**-1", "m s-1", "m/s"), "m s-1", "10 m northward wind"),
    "u100": (("m s**-1", "m s-1", "m/s"), "m s-1", "100 m eastward wind"),
    "v100": (("m s**-1", "m s-1", "m/s"), "m s-1", "100 m northward wind"),
    "blh": (("m",), "m", "boundary layer height"),
    "sp": (("Pa",), "Pa", "surface pressure"),
    "t2m": (("K",), "K", "2 m temperature"),
    "tcc": (("(0 - 1)", "1", "0-1", "(0-1)", "dimensionless"), "1", "total cloud cover"),
    "fsr": (("m",), "m", "forecast surface roughness"),
    "sshf": (("J m**-2", "J m-2"), "J m-2", "surface sensible heat flux (accumulated, positive downwards)"),
}
_TIME_NAMES = ("valid_time", "time")
WIND_FIELDS = ("u10", "v10")
"""The fields the met preparation needs from every ERA5 file (the 10 m wind)."""


def required_variables(names: set[str], wind: bool = True) -> tuple[Required, ...]:
    """What a catalogued ERA5 file must hold: the 10 m wind (unless ``wind`` is false: one member of a
    CDS zip), and every known field among ``names`` in accepted units (the reader rejects a field with
    other units)."""
    wanted = [name for name in FIELDS if (wind and name in WIND_FIELDS) or name in names]
    return tuple(Required(name, FIELDS[name][0]) for name in wanted)


def _members(path: str | os.PathLike[str]) -> list[xr.Dataset]:
    """The CDS file as one dataset, or each ``.nc`` member of a CDS zip (loaded into memory)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith(".nc")]
                if not names:
                    raise ProductFormatError(path, "<zip>", "at least one *.nc member")
                return [xr.open_dataset(io.BytesIO(zf.read(n))).load() for n in names]
        check_complete(path)
        return [xr.open_dataset(path)]
    except ProductFormatError:
        raise
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile) as exc:
        raise ProductFormatError(path, "<file>", f"a readable ERA5 NetCDF file or CDS zip ({exc})") from exc


def _first_valid_expver(var: xr.DataArray) -> xr.DataArray:
    """Collapse an ``expver`` dimension by taking, per cell, the first non-NaN value along it."""
    out = var.isel(expver=0, drop=True)
    for k in range(1, var.sizes["expver"]):
        out = out.fillna(var.isel(expver=k, drop=True))
    return out


def _normalise(ds: xr.Dataset, path: str | os.PathLike[str]) -> tuple[xr.Dataset, list[str]]:
    """Rename to (time, latitude, longitude), collapse expver, keep the known fields, check units."""
    time_name = next((n for n in _TIME_NAMES if n in ds.dims), None)
    if time_name is None:
        raise ProductFormatError(path, "valid_time", "a 'valid_time' or 'time' dimension")
    for axis in ("latitude", "longitude"):
        if axis not in ds.dims:
            raise ProductFormatError(path, axis, f"a {axis!r} dimension")
    for axis in (time_name, "latitude", "longitude"):
        if axis not in ds.variables:  # a dimension without its coordinate variable: no times or positions
            raise ProductFormatError(path, axis, "variable present")
    expvers = []
    if "expver" in ds.variables:
        expvers = sorted({str(v) for v in np.ravel(ds["expver"].values)})
    ds = ds.rename({time_name: "time"}) if time_name != "time" else ds
    out = {}
    for name, (accepted, units, long_name) in FIELDS.items():
        if name not in ds.data_vars:
            continue
        var = ds[name]
        found = var.attrs.get("units")
        if found not in accepted:
            raise ProductFormatError(path, name, f"units in {accepted}, found {found!r}")
        if var.dtype.kind not in "fiu":
            raise ProductFormatError(path, name, f"numeric values, found dtype {var.dtype}")
        if "expver" in var.dims:
            var = _first_valid_expver(var)
        if set(var.dims) != {"time", "latitude", "longitude"}:
            raise ProductFormatError(path, name, "dimensions (valid_time|time, latitude, longitude)")
        var = var.transpose("time", "latitude", "longitude").reset_coords(drop=True)
        out[name] = var.assign_attrs({"units": units, "long_name": long_name})
    coords = {axis: ds[axis] for axis in ("time", "latitude", "longitude")}
    return xr.Dataset(out, coords=coords), expvers


def _sorted_grid(ds: xr.Dataset) -> xr.Dataset:
    """Longitude in [-180, 180) ascending (duplicates dropped), latitude ascending."""
    lon = normalise_lon(ds["longitude"].values)
    ds = ds.assign_coords(longitude=("longitude", lon))
    ds = ds.sortby("longitude").sortby("latitude")
    _, unique = np.unique(ds["longitude"].values, return_index=True)
    return ds.isel(longitude=np.sort(unique))


def _label(ds: xr.Dataset) -> None:
    """Set carrier units and long names on the fields and axes (merging drops variable attributes)."""
    for name in ds.data_vars:
        _, units, long_name = FIELDS[name]
        ds[name].attrs = {"units": units, "long_name": long_name}
    ds["time"].attrs = {"long_name": "valid time (UTC)"}
    ds["latitude"].attrs = {"units": "degrees_north", "long_name": "latitude"}
    ds["longitude"].attrs = {"units": "degrees_east", "long_name": "longitude"}


def _step(values: np.ndarray) -> float:
    return float(np.median(np.abs(np.diff(values)))) if values.size > 1 else 0.0


def _bracket(offset: np.ndarray, width: float, step: float) -> np.ndarray:
    """Points with 0 <= offset <= width, plus the neighbours within one grid step outside the interval."""
    tol = step * (1.0 + 1e-9)
    return ((offset >= 0) & (offset <= width)) | ((offset < 0) & (offset > -tol)) | (
        (offset > width) & (offset < width + tol))


def _select_bbox(ds: xr.Dataset, path: str | os.PathLike[str], bbox: BBox | None) -> xr.Dataset:
    """Grid points inside ``bbox`` plus one bracketing point on each side (so the box can be interpolated)."""
    if bbox is None:
        return ds
    west, south, east, north = bbox
    # float64: in float32 (old-CDS files) the bracketing tolerance rounds away and a box edge on a grid
    # line loses its outer row
    lat = ds["latitude"].values.astype(np.float64)
    lon = ds["longitude"].values.astype(np.float64)
    width = (east - west) % 360.0 if (east - west) < 360.0 else 360.0
    offset = (lon - west) % 360.0
    lon_step = _step(lon)
    offset = np.where(offset > 360.0 - lon_step * (1.0 + 1e-9), offset - 360.0, offset)
    lon_mask = _bracket(offset, width, lon_step)
    lat_mask = _bracket(lat - south, north - south, _step(lat))
    if not lon_mask.any() or not lat_mask.any():
        raise EmptyAOIError(path, bbox, "bbox outside the ERA5 grid")
    return ds.isel(latitude=np.nonzero(lat_mask)[0], longitude=np.nonzero(lon_mask)[0])


def read_era5(path: str | os.PathLike[str], bbox: Sequence[float] | None = None) -> xr.Dataset:
    """Read ERA5 single-level fields (CDS NetCDF, old or new layout, or CDS zip) around ``bbox``.

    ``bbox`` is (west, south, east, north) in degrees; the grid points inside it plus the nearest
    point beyond each edge are returned. Output dims ``time, latitude`` (increasing), ``longitude``
    ([-180, 180), increasing); fields ``u10, v10, u100, v100`` (m s-1), ``blh`` (m), ``sp`` (Pa),
    ``t2m`` (K), ``tcc`` (1), ``fsr`` (m), ``sshf`` (J m-2, accumulated, positive downwards) where
    present; other variables (e.g. pressure levels) are left out. Attributes: provenance, with
    ``product_version`` "ERA5" and ``expver`` (the experiment versions found, comma separated).

    Raises ProductFormatError (unreadable file, missing dimension or coordinate variable (``valid_time``
    or ``time``, ``latitude``, ``longitude``), no ``u10``/``v10``, a field in wrong units or not numeric)
    or EmptyAOIError.
    """
    box = validate_bbox(path, bbox)
    members = _members(path)
    try:
        parts = [_normalise(member, path) for member in members]
        if not any(part[0].data_vars for part in parts):
            raise ProductFormatError(path, "u10", f"at least one ERA5 field of {sorted(FIELDS)}")
        for name in WIND_FIELDS:
            if not any(name in part[0].data_vars for part in parts):
                raise ProductFormatError(path, name, "the 10 m wind field (the met preparation needs it)")
        merged = xr.merge([part[0] for part in parts], join="outer", compat="no_conflicts",
                          combine_attrs="drop")
        ds = _select_bbox(_sorted_grid(merged), path, box).load()
    finally:
        for member in members:
            member.close()
    times = ds["time"].values.astype("datetime64[ns]")
    _label(ds)
    expvers = sorted({v for part in parts for v in part[1]})
    ds.attrs = {
        **provenance_attrs(path, "ERA5", "ERA5", iso_z(times.min()), iso_z(times.max())),
        "expver": ",".join(expvers),
    }
    return ds


def era5_grid(dims: set[str]) -> bool:
    """True when dimension names ``dims`` are those of a CDS ERA5 grid: a ``valid_time``/``time`` and a
    ``latitude`` and ``longitude`` dimension (a member of a CDS zip may hold only fields this reader
    does not use, such as an accumulated precipitation)."""
    return bool(dims & set(_TIME_NAMES)) and {"latitude", "longitude"} <= dims


def era5_layout(dims: set[str], names: set[str]) -> bool:
    """True when dimension names ``dims`` and variable names ``names`` are those of a CDS ERA5 file:
    the ERA5 grid (:func:`era5_grid`) and at least one known field."""
    return era5_grid(dims) and bool(names & set(FIELDS))
