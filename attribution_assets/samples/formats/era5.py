"""Write an ERA5 single-level carrier the way the Copernicus CDS delivers it (NetCDF, or a zip of two).

Layouts (ECMWF CDS documentation "GRIB to netCDF conversion on the new CDS"; cdsapi):
- ``"cds-2024"`` (current CDS, NetCDF-4): dims ``valid_time, latitude, longitude``; ``valid_time`` int64
  seconds since 1970-01-01; latitude decreasing; float32 fields with NaN fill and ECMWF unit spellings
  (``m s**-1``, ``J m**-2``); ``expver(valid_time)`` strings and a scalar ``number``.
- ``"cds-legacy"`` (old CDS, NetCDF-3): dims ``time[, expver], latitude, longitude``; ``time`` int32 hours
  since 1900-01-01; latitude decreasing; fields int16-packed with ``scale_factor``/``add_offset`` and
  ``_FillValue = missing_value = -32767`` (or float32 when ``pack=False``); an ``expver`` dimension
  (1 = ERA5, 5 = ERA5T) when the request spanned the final/preliminary boundary.
- zip: ``data_stream-oper_stepType-instant.nc`` + ``data_stream-oper_stepType-accum.nc`` (cds-2024 each).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from attribution_assets.atomic import atomic_path

LAYOUTS = ("cds-2024", "cds-legacy")
ACCUMULATED = frozenset({"sshf", "slhf", "ssr", "str", "ssrd", "strd", "tp", "cp", "lsp", "e"})
"""ERA5 short names delivered in the ``stepType-accum`` file."""

_PACKED_FILL = np.int16(-32767)
# short name -> (ECMWF units, long_name)
VARIABLES = {
    "u10": ("m s**-1", "10 metre U wind component"),
    "v10": ("m s**-1", "10 metre V wind component"),
    "u100": ("m s**-1", "100 metre U wind component"),
    "v100": ("m s**-1", "100 metre V wind component"),
    "blh": ("m", "Boundary layer height"),
    "sp": ("Pa", "Surface pressure"),
    "t2m": ("K", "2 metre temperature"),
    "tcc": ("(0 - 1)", "Total cloud cover"),
    "fsr": ("m", "Forecast surface roughness"),
    "sshf": ("J m**-2", "Surface sensible heat flux"),
}


def _fields(ds: xr.Dataset) -> list[str]:
    """Carrier variables on (time, latitude, longitude), in carrier order."""
    return [name for name, var in ds.data_vars.items() if set(var.dims) == {"time", "latitude", "longitude"}]


def _decreasing_lat(ds: xr.Dataset) -> xr.Dataset:
    return ds.sortby("latitude", ascending=False)


def _field_attrs(name: str, var: xr.DataArray) -> tuple[str, str]:
    units, long_name = VARIABLES.get(name, (var.attrs.get("units", "1"), var.attrs.get("long_name", name)))
    return units, long_name


def _write_cds2024(ds: xr.Dataset, path: Path) -> None:
    ds = _decreasing_lat(ds)
    seconds = (ds["time"].values.astype("datetime64[s]").astype(np.int64))
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncatts({"GRIB_centre": "ecmf", "GRIB_centreDescription": "European Centre for Medium-Range "
                      "Weather Forecasts", "GRIB_subCentre": np.int64(0), "Conventions": "CF-1.7",
                      "institution": "European Centre for Medium-Range Weather Forecasts"})
        for dim, size in (("valid_time", ds.sizes["time"]), ("latitude", ds.sizes["latitude"]),
                          ("longitude", ds.sizes["longitude"])):
            nc.createDimension(dim, size)
        vt = nc.createVariable("valid_time", "i8", ("valid_time",))
        vt.setncatts({"long_name": "time", "standard_name": "time", "units": "seconds since 1970-01-01",
                      "calendar": "proleptic_gregorian"})
        vt[:] = seconds
        for axis, units in (("latitude", "degrees_north"), ("longitude", "degrees_east")):
            var = nc.createVariable(axis, "f8", (axis,))
            var.setncatts({"units": units, "standard_name": axis, "long_name": axis})
            var[:] = ds[axis].values.astype(np.float64)
        number = nc.createVariable("number", "i8", ())
        number.setncatts({"long_name": "ensemble member numerical id", "units": "1"})
        number.assignValue(0)
        expver = nc.createVariable("expver", str, ("valid_time",))
        expver.long_name = "Experiment version"
        expver[:] = np.array(["0001"] * ds.sizes["time"], dtype=object)
        for name in _fields(ds):
            units, long_name = _field_attrs(name, ds[name])
            var = nc.createVariable(name, "f4", ("valid_time", "latitude", "longitude"),
                                    fill_value=np.float32(np.nan), zlib=True, complevel=1)
            var.setncatts({"units": units, "long_name": long_name, "GRIB_shortName": name,
                           "coordinates": "number valid_time latitude longitude expver"})
            var[:] = ds[name].transpose("time", "latitude", "longitude").values.astype(np.float32)


def _pack_int16(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """int16 packing as the old CDS did: (packed, scale_factor, add_offset); NaN -> -32767."""
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    scale = (vmax - vmin) / (2**16 - 4) if vmax > vmin else 1.0  # packed range [-32766, 32766]
    offset = (vmax + vmin) / 2.0
    packed = np.where(np.isfinite(values), np.rint((values - offset) / scale), _PACKED_FILL)
    return packed.astype(np.int16), scale, offset


def _legacy_expver(values: np.ndarray, split: int | None) -> np.ndarray:
    """Spread (time, lat, lon) values over an expver axis: ERA5 (1) before ``split``, ERA5T (5) after."""
    if split is None:
        return values
    out = np.full((values.shape[0], 2, *values.shape[1:]), np.nan, dtype=np.float64)
    out[:split, 0] = values[:split]
    out[split:, 1] = values[split:]
    return out


def _write_legacy(ds: xr.Dataset, path: Path, pack: bool, expver_split: int | None, lon360: bool) -> None:
    ds = _decreasing_lat(ds)
    if lon360:
        ds = ds.assign_coords(longitude=ds["longitude"] % 360.0).sortby("longitude")
    hours = (ds["time"].values - np.datetime64("1900-01-01T00:00:00", "ns")) // np.timedelta64(1, "h")
    dims = ("time", "expver", "latitude", "longitude") if expver_split is not None else (
        "time", "latitude", "longitude")
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.setncatts({"Conventions": "CF-1.6", "history": "written in the legacy CDS netCDF layout"})
        nc.createDimension("longitude", ds.sizes["longitude"])
        nc.createDimension("latitude", ds.sizes["latitude"])
        if expver_split is not None:
            nc.createDimension("expver", 2)
            ev = nc.createVariable("expver", "i4", ("expver",))
            ev.long_name = "expver"
            ev[:] = np.array([1, 5], dtype=np.int32)
        nc.createDimension("time", None)
        for axis, units in (("longitude", "degrees_east"), ("latitude", "degrees_north")):
            var = nc.createVariable(axis, "f4", (axis,))
            var.setncatts({"units": units, "long_name": axis})
            var[:] = ds[axis].values.astype(np.float32)
        t = nc.createVariable("time", "i4", ("time",))
        t.setncatts({"units": "hours since 1900-01-01 00:00:00.0", "long_name": "time",
                     "calendar": "gregorian"})
        t[:] = hours.astype(np.int32)
        for name in _fields(ds):
            units, long_name = _field_attrs(name, ds[name])
            values = _legacy_expver(ds[name].transpose("time", "latitude", "longitude").values, expver_split)
            if pack:
                packed, scale, offset = _pack_int16(values.astype(np.float64))
                var = nc.createVariable(name, "i2", dims, fill_value=_PACKED_FILL)
                var.setncatts({"scale_factor": scale, "add_offset": offset, "missing_value": _PACKED_FILL})
                var.set_auto_maskandscale(False)
                var[:] = packed
            else:
                var = nc.createVariable(name, "f4", dims, fill_value=np.float32(-32767.0))
                var[:] = np.where(np.isfinite(values), values, -32767.0).astype(np.float32)
            var.setncatts({"units": units, "long_name": long_name})


def write_era5(ds: xr.Dataset, path: str | os.PathLike[str], layout: str = "cds-2024", *,
               pack: bool = True, expver_split: int | None = None, lon360: bool = False) -> None:
    """Write an ERA5 carrier (dims ``time, latitude, longitude``; fields from ``VARIABLES``) as a CDS file.

    ``layout`` is ``"cds-2024"`` or ``"cds-legacy"``. Legacy only: ``pack`` int16 scale/offset packing
    (default) or float32; ``expver_split`` = time index from which values sit under ERA5T (expver 5)
    instead of ERA5 (expver 1), adding an ``expver`` dimension; ``lon360`` writes longitudes in [0, 360).
    Every (time, latitude, longitude) variable is written, with ECMWF units for the known short names.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"ERA5 layout must be one of {LAYOUTS}, got {layout!r}")
    with atomic_path(path) as tmp:
        if layout == "cds-2024":
            _write_cds2024(ds, tmp)
        else:
            _write_legacy(ds, tmp, pack, expver_split, lon360)


def write_era5_zip(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write an ERA5 carrier as the CDS zip: instantaneous and accumulated fields in two cds-2024 files.

    Members: ``data_stream-oper_stepType-instant.nc`` (fields not in ``ACCUMULATED``) and
    ``data_stream-oper_stepType-accum.nc`` (fields in ``ACCUMULATED``); an empty member is left out.
    """
    fields = _fields(ds)
    parts = {
        "instant": [name for name in fields if name not in ACCUMULATED],
        "accum": [name for name in fields if name in ACCUMULATED],
    }
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf,
    ):
        for step, names in parts.items():
            if not names:
                continue
            member = Path(tmpdir) / f"data_stream-oper_stepType-{step}.nc"
            _write_cds2024(ds[names], member)
            zf.write(member, arcname=member.name)
