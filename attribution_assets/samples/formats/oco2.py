"""Write an OCO-2 carrier as an OCO-2 L2 Lite FP file (``oco2_LtCO2_*.nc4``, NetCDF-4 with groups).

Layout follows the OCO-2 L2 Lite FP data product (GES DISC ``OCO2_L2_Lite_FP`` v10/v11 user guide;
oco2peak): dims ``sounding_id, levels=20, vertices=4``; root ``sounding_id`` (int64), ``time``
(float64 s since 1970-01-01), ``latitude``, ``longitude``, ``vertex_latitude``, ``vertex_longitude``,
``xco2``, ``xco2_uncertainty`` (ppm), ``xco2_quality_flag`` (int8, 0 good) and per-level fields; groups
``Sounding`` (orbit, footprint, operation_mode), ``Retrieval`` (psurf hPa) and ``Meteorology``
(windspeed_u_met, windspeed_v_met m s-1, psurf_apriori_o2a hPa, named psurf_apriori in B9). Float
variables carry ``missing_value=-999999`` (not ``_FillValue``); global ``BuildId`` and ``Platform``.
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta

import netCDF4
import numpy as np
import xarray as xr

from attribution_assets.atomic import atomic_path
from attribution_assets.times import as_utc

MISSING = -999999.0
_EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")

# (group, file name, carrier name, dtype, units, long_name); float variables get missing_value
_SOUNDING_FIELDS = (
    ("", "latitude", "latitude", "f4", "degrees_north", "sounding centre latitude"),
    ("", "longitude", "longitude", "f4", "degrees_east", "sounding centre longitude"),
    ("", "xco2", "xco2", "f4", "ppm", "column-averaged dry air mole fraction of CO2"),
    ("", "xco2_uncertainty", "xco2_uncertainty", "f4", "ppm", "1-sigma uncertainty of xco2"),
    ("", "xco2_quality_flag", "xco2_quality_flag", "i1", "1", "quality flag, 0 = good"),
    ("Sounding", "orbit", "orbit", "i4", "1", "orbit number"),
    ("Sounding", "footprint", "footprint", "i1", "1", "footprint number (1-8)"),
    ("Sounding", "operation_mode", "operation_mode", "i1", "1", "0 nadir, 1 glint, 2 target, 4 SAM"),
    ("Retrieval", "psurf", "psurf", "f4", "hPa", "retrieved surface pressure"),
    ("Meteorology", "windspeed_u_met", "windspeed_u_met", "f4", "m s-1", "10 m eastward wind (a priori)"),
    ("Meteorology", "windspeed_v_met", "windspeed_v_met", "f4", "m s-1", "10 m northward wind (a priori)"),
)
OPTIONAL_SOUNDING_FIELDS = (
    ("", "xco2_apriori", "xco2_apriori", "f4", "ppm", "a-priori xco2"),
    ("Sounding", "land_fraction", "land_fraction", "f4", "%", "land fraction of the footprint"),
    ("Sounding", "altitude", "altitude", "f4", "m", "surface altitude"),
    ("Retrieval", "tcwv", "tcwv", "f4", "kg m-2", "total column water vapour"),
    ("Retrieval", "windspeed", "windspeed", "f4", "m s-1", "retrieved wind speed"),
)
OPTIONAL_LEVEL_FIELDS = (
    ("pressure_levels", "hPa", "pressure levels"),
    ("co2_profile_apriori", "ppm", "a-priori CO2 profile"),
    ("xco2_averaging_kernel", "1", "xco2 column averaging kernel"),
    ("pressure_weight", "1", "pressure weighting function"),
)
"""Optional carrier variables on (sounding, level) written to root (sounding_id, levels) variables."""


def oco2_lite_filename(day: date, build: str = "B11", revision: str = "210",
                       processed: datetime | None = None) -> str:
    """Native name ``oco2_LtCO2_<YYMMDD>_<build><revision>Ar_<YYMMDDHHMMSS>s.nc4``.

    e.g. ``oco2_LtCO2_200113_B11210Ar_240910123456s.nc4``; ``processed`` (processing time, naive = UTC)
    defaults to midnight 30 days after ``day`` so names are deterministic.
    """
    if not (build.startswith("B") and build[1:].isdigit()):
        raise ValueError(f"OCO-2 build must look like 'B11', got {build!r}")
    if len(revision) != 3 or not revision.isdigit():
        raise ValueError(f"OCO-2 build revision must be 3 digits, got {revision!r}")
    stamp = as_utc(processed) if processed is not None else datetime.combine(day + timedelta(days=30), time())
    return f"oco2_LtCO2_{day:%y%m%d}_{build}{revision}Ar_{stamp:%y%m%d%H%M%S}s.nc4"


def _group(nc: netCDF4.Dataset, name: str) -> netCDF4.Dataset:
    if not name:
        return nc
    return nc.groups[name] if name in nc.groups else nc.createGroup(name)


def _write(nc: netCDF4.Dataset, group: str, name: str, dims: tuple[str, ...], dtype: str,
           values: np.ndarray, units: str, long_name: str) -> None:
    """One variable; float values get ``missing_value`` and NaN -> -999999."""
    var = _group(nc, group).createVariable(name, dtype, dims, zlib=True, complevel=4)
    var.set_auto_maskandscale(False)
    var.units = units
    var.long_name = long_name
    if dtype.startswith("f"):
        var.missing_value = np.array(MISSING, dtype=dtype)
        values = np.where(np.isfinite(values), values, MISSING)
    var[:] = np.asarray(values).astype(dtype)


def _write_geometry(nc: netCDF4.Dataset, ds: xr.Dataset) -> None:
    """``sounding_id``, ``time`` and the footprint vertices."""
    sid = nc.createVariable("sounding_id", "i8", ("sounding_id",))
    sid.long_name = "sounding id (YYYYMMDDhhmmssmf)"
    sid[:] = np.asarray(ds["sounding_id"].values, dtype=np.int64)
    seconds = (np.asarray(ds["time"].values, dtype="datetime64[ns]") - _EPOCH) / np.timedelta64(1, "s")
    _write(nc, "", "time", ("sounding_id",), "f8", seconds, "seconds since 1970-01-01 00:00:00",
           "sounding time")
    for name, units in (("vertex_latitude", "degrees_north"), ("vertex_longitude", "degrees_east")):
        values = ds[name].transpose("sounding", "vertex").values
        _write(nc, "", name, ("sounding_id", "vertices"), "f4", values, units, f"footprint {name[7:]}")


def write_oco2_lite(ds: xr.Dataset, path: str | os.PathLike[str], build_id: str = "B11.1.00") -> None:
    """Write an OCO-2 carrier (dims ``sounding``, ``vertex`` = 4, ``level`` = 20) as an L2 Lite FP file.

    ``ds`` follows docs/carriers.md for ``oco2.read_oco2_lite`` (NaN = missing). Optional variables:
    ``psurf_apriori`` (hPa; default ``psurf``), those in ``OPTIONAL_SOUNDING_FIELDS`` and the per-level
    ``OPTIONAL_LEVEL_FIELDS``. ``build_id`` goes to the global ``BuildId``; a B9 build writes
    ``Meteorology/psurf_apriori``, later builds ``Meteorology/psurf_apriori_o2a``.
    """
    apriori_name = "psurf_apriori" if build_id.startswith("B9") else "psurf_apriori_o2a"
    apriori = ds["psurf_apriori"] if "psurf_apriori" in ds else ds["psurf"]
    with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.setncatts({"BuildId": build_id, "Platform": "OCO-2", "Sensor": "OCO-2",
                      "title": "OCO-2 Level 2 bias-corrected XCO2 and other select fields (Lite FP)"})
        nc.createDimension("sounding_id", ds.sizes["sounding"])
        nc.createDimension("levels", ds.sizes.get("level", 20))
        nc.createDimension("vertices", ds.sizes.get("vertex", 4))
        _write_geometry(nc, ds)
        present = [f for f in OPTIONAL_SOUNDING_FIELDS if f[2] in ds]
        for group, name, source, dtype, units, long_name in (*_SOUNDING_FIELDS, *present):
            _write(nc, group, name, ("sounding_id",), dtype, ds[source].values, units, long_name)
        _write(nc, "Meteorology", apriori_name, ("sounding_id",), "f4", apriori.values, "hPa",
               "a-priori surface pressure")
        for name, units, long_name in OPTIONAL_LEVEL_FIELDS:
            if name in ds:
                values = ds[name].transpose("sounding", "level").values
                _write(nc, "", name, ("sounding_id", "levels"), "f4", values, units, long_name)
