"""OCO-2 L2 Lite FP soundings (``oco2_LtCO2_*.nc4``, builds B9/B10/B11) inside an AOI.

Layout (GES DISC ``OCO2_L2_Lite_FP`` data user guide; oco2peak): dims ``sounding_id``, ``levels`` = 20,
``vertices`` = 4; root ``sounding_id``, ``time`` (s since 1970-01-01), ``latitude``, ``longitude``,
``vertex_latitude/longitude``, ``xco2``, ``xco2_uncertainty`` (ppm), ``xco2_quality_flag`` (0 good);
``Sounding/`` orbit, footprint, operation_mode; ``Retrieval/psurf`` (hPa); ``Meteorology/``
windspeed_u_met, windspeed_v_met (m s-1) and ``psurf_apriori_o2a`` (B10+) or ``psurf_apriori`` (B9).
Missing values are flagged with the ``missing_value`` attribute (-999999), returned as NaN.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from functools import partial

import netCDF4
import numpy as np
import xarray as xr

from attribution_assets.readers.bbox import BBox, overlaps_bbox
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.layout import Required, check_required
from attribution_assets.readers.template import provenance_attrs, read_product
from attribution_assets.readers.values import masked_to_nan
from attribution_assets.times import iso_z

_EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")
# carrier name -> (group, name, units, long_name)
_REQUIRED = {
    "xco2": ("", "xco2", "ppm", "column-averaged dry air mole fraction of CO2 (bias corrected)"),
    "xco2_uncertainty": ("", "xco2_uncertainty", "ppm", "1-sigma uncertainty of xco2"),
    "xco2_quality_flag": ("", "xco2_quality_flag", "1", "quality flag, 0 = good"),
    "orbit": ("Sounding", "orbit", "1", "orbit number"),
    "footprint": ("Sounding", "footprint", "1", "footprint number (1-8)"),
    "operation_mode": ("Sounding", "operation_mode", "1", "0 nadir, 1 glint, 2 target, 4 SAM"),
    "psurf": ("Retrieval", "psurf", "hPa", "retrieved surface pressure"),
    "windspeed_u_met": ("Meteorology", "windspeed_u_met", "m s-1", "10 m eastward wind (a priori)"),
    "windspeed_v_met": ("Meteorology", "windspeed_v_met", "m s-1", "10 m northward wind (a priori)"),
}
_OPTIONAL = {
    "xco2_apriori": ("", "xco2_apriori", "ppm", "a-priori xco2"),
    "land_fraction": ("Sounding", "land_fraction", "%", "land fraction of the footprint"),
    "altitude": ("Sounding", "altitude", "m", "surface altitude"),
    "tcwv": ("Retrieval", "tcwv", "kg m-2", "total column water vapour"),
    "windspeed": ("Retrieval", "windspeed", "m s-1", "retrieved wind speed"),
    "psurf_apriori": ("Meteorology", "psurf_apriori_o2a", "hPa", "a-priori surface pressure"),
}
_LEVEL_FIELDS = {
    "pressure_levels": ("hPa", "pressure levels"),
    "co2_profile_apriori": ("ppm", "a-priori CO2 profile"),
    "xco2_averaging_kernel": ("1", "xco2 column averaging kernel"),
    "pressure_weight": ("1", "pressure weighting function"),
}
_UNITS = {"xco2": ("ppm",), "xco2_uncertainty": ("ppm",), "psurf": ("hPa",)}
_GEOMETRY = ("sounding_id", "time", "latitude", "longitude", "vertex_latitude", "vertex_longitude")
REQUIRED_VARIABLES = (
    *(Required(name) for name in _GEOMETRY),
    *(
        Required(f"{group}/{name}".lstrip("/"), _UNITS.get(out))
        for out, (group, name, *_) in _REQUIRED.items()
    ),
)
"""The variables (path, units, numeric values) without which :func:`read_oco2_lite` rejects a file."""


def _lookup(nc: netCDF4.Dataset, group: str, name: str) -> netCDF4.Variable | None:
    holder = nc.groups.get(group) if group else nc
    return None if holder is None else holder.variables.get(name)


def _required(nc: netCDF4.Dataset, path: str | os.PathLike[str], group: str, name: str) -> netCDF4.Variable:
    var = _lookup(nc, group, name)
    if var is None:
        raise ProductFormatError(path, f"{group}/{name}".lstrip("/"), "variable present")
    return var


def _apriori_variable(nc: netCDF4.Dataset) -> netCDF4.Variable | None:
    """``Meteorology/psurf_apriori_o2a`` (B10+) or ``Meteorology/psurf_apriori`` (B9)."""
    var = _lookup(nc, "Meteorology", "psurf_apriori_o2a")
    return var if var is not None else _lookup(nc, "Meteorology", "psurf_apriori")


def _check_layout(nc: netCDF4.Dataset, path: str | os.PathLike[str]) -> None:
    for name in _GEOMETRY:
        _required(nc, path, "", name)
    for group, name, *_ in _REQUIRED.values():
        _required(nc, path, group, name)
    for name, accepted in _UNITS.items():
        group = _REQUIRED[name][0]
        units = getattr(_required(nc, path, group, name), "units", None)
        if units not in accepted:
            raise ProductFormatError(path, f"{group}/{name}".lstrip("/"),
                                     f"units in {accepted}, found {units!r}")
    time_units = str(getattr(nc.variables["time"], "units", ""))
    if not time_units.startswith("seconds since 1970-01-01"):
        raise ProductFormatError(path, "time", f"units 'seconds since 1970-01-01', found {time_units!r}")
    check_required(nc, path, REQUIRED_VARIABLES)


def _select(nc: netCDF4.Dataset, path: str | os.PathLike[str], bbox: BBox | None) -> tuple[slice, np.ndarray]:
    """Contiguous sounding range around the selected soundings and the in-range selection mask.

    A sounding is selected when its centre lies in the bbox or its footprint vertices overlap it.
    """
    lat = masked_to_nan(nc.variables["latitude"][:])
    if bbox is None:
        return slice(0, lat.size), np.ones(lat.size, dtype=bool)
    lon = masked_to_nan(nc.variables["longitude"][:])
    vlat = masked_to_nan(nc.variables["vertex_latitude"][:])
    vlon = masked_to_nan(nc.variables["vertex_longitude"][:])
    dlon = (vlon - lon[:, None] + 180.0) % 360.0 - 180.0
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # soundings whose vertices are all missing
        mask = overlaps_bbox(lon, lon, lat, lat, bbox) | overlaps_bbox(
            lon + np.nanmin(dlon, axis=1), lon + np.nanmax(dlon, axis=1),
            np.nanmin(vlat, axis=1), np.nanmax(vlat, axis=1), bbox)
    if not mask.any():
        raise EmptyAOIError(path, bbox, "no OCO-2 sounding inside the bbox")
    idx = np.nonzero(mask)[0]
    window = slice(int(idx[0]), int(idx[-1]) + 1)
    return window, mask[window]


def _build(nc: netCDF4.Dataset, path: str | os.PathLike[str], bbox: BBox | None) -> xr.Dataset:
    window, keep = _select(nc, path, bbox)

    def take(var: netCDF4.Variable, as_float: bool = True) -> np.ndarray:
        """The kept soundings of a (sounding_id, ...) variable; missing -> NaN for floats."""
        raw = var[window]
        return (masked_to_nan(raw) if as_float else np.ma.getdata(raw))[keep]

    seconds = take(nc.variables["time"])
    times = _EPOCH + np.rint(seconds * 1e6).astype(np.int64).astype("timedelta64[us]")
    data = {}
    for out, (group, name, units, long_name) in _REQUIRED.items():
        var = nc.groups[group].variables[name] if group else nc.variables[name]
        is_float = var.dtype.kind == "f"
        data[out] = ("sounding", take(var, is_float), {"units": units, "long_name": long_name})
    for out, (group, name, units, long_name) in _OPTIONAL.items():
        var = _apriori_variable(nc) if out == "psurf_apriori" else _lookup(nc, group, name)
        if var is not None:
            data[out] = ("sounding", take(var), {"units": units, "long_name": long_name})
    for name, (units, long_name) in _LEVEL_FIELDS.items():
        if name in nc.variables:
            data[name] = (("sounding", "level"), take(nc.variables[name]),
                          {"units": units, "long_name": long_name})
    coords = {
        "sounding_id": ("sounding", take(nc.variables["sounding_id"], False).astype(np.int64),
                        {"units": "1", "long_name": "sounding id (YYYYMMDDhhmmssmf)"}),
        "time": ("sounding", times.astype("datetime64[ns]"), {"long_name": "sounding time (UTC)"}),
        "latitude": ("sounding", take(nc.variables["latitude"]), {"units": "degrees_north",
                                                                 "long_name": "sounding centre latitude"}),
        "longitude": ("sounding", take(nc.variables["longitude"]), {"units": "degrees_east",
                                                                   "long_name": "sounding centre longitude"}),
        "vertex_latitude": (("sounding", "vertex"), take(nc.variables["vertex_latitude"]),
                            {"units": "degrees_north", "long_name": "footprint vertex latitudes"}),
        "vertex_longitude": (("sounding", "vertex"), take(nc.variables["vertex_longitude"]),
                             {"units": "degrees_east", "long_name": "footprint vertex longitudes"}),
    }
    attrs = {
        **provenance_attrs(path, str(getattr(nc, "BuildId", "unknown")), "OCO2",
                           iso_z(times.min()), iso_z(times.max())),
        "platform": str(getattr(nc, "Platform", "OCO-2")),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def read_oco2_lite(path: str | os.PathLike[str], bbox: Sequence[float] | None = None) -> xr.Dataset:
    """Read the OCO-2 Lite soundings whose centre or footprint lies in ``bbox`` (W, S, E, N; degrees).

    Returns dims ``sounding``, ``vertex`` (4) and, when the file has per-level fields, ``level`` (20):
    ``xco2``/``xco2_uncertainty`` (ppm), ``xco2_quality_flag`` (0 good; no filtering is applied),
    ``psurf`` (hPa), ``windspeed_u_met``/``windspeed_v_met`` (m s-1), ``orbit``, ``footprint``,
    ``operation_mode``, optional ``psurf_apriori`` (hPa, from psurf_apriori_o2a or B9 psurf_apriori);
    coords ``sounding_id``, ``time`` (datetime64[ns] UTC), ``latitude``, ``longitude``, ``vertex_*``.
    ``product_version`` is the file's ``BuildId``; time coverage describes the returned soundings.

    Raises ProductFormatError (unreadable file, missing variable, wrong units) or EmptyAOIError.
    """
    return read_product(path, bbox, partial(netCDF4.Dataset, mode="r"), "NetCDF-4", _check_layout, _build)
