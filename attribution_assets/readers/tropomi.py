"""Sentinel-5P TROPOMI L2 CH4 (``S5P_*_L2__CH4____*.nc``, NetCDF-4 with groups) for one AOI.

Layout (S5P L2 CH4 product user manual; satpy ``tropomi_l2`` and HARP ingestion): ``/PRODUCT`` holds
``time`` (s since 2010-01-01), ``delta_time`` (ms), ``qa_value`` (uint8, scale 0.01), ``latitude``,
``longitude`` and ``methane_mixing_ratio*`` (units "1e-9" = ppb); ``SUPPORT_DATA/GEOLOCATIONS`` the corner
bounds, ``SUPPORT_DATA/DETAILED_RESULTS`` the ``column_averaging_kernel`` and ``SUPPORT_DATA/INPUT_DATA``
``surface_pressure``, ``pressure_interval`` (Pa), ``methane_profile_apriori``, ``dry_air_subcolumns``
(mol m-2). Per-layer fields run top-of-atmosphere -> surface in the file; the carrier flips them so
index 0 is the surface layer. Recommended quality filter: ``qa_value >= 0.5``.
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

QA_THRESHOLD = 0.5
PPB_UNITS = ("1e-9", "ppb", "parts_per_billion", "1e-9 mol mol-1")
_EPOCH_2010 = np.datetime64("2010-01-01T00:00:00", "ns")
_GROUPS = {
    "PRODUCT": "PRODUCT",
    "GEOLOCATIONS": "PRODUCT/SUPPORT_DATA/GEOLOCATIONS",
    "DETAILED_RESULTS": "PRODUCT/SUPPORT_DATA/DETAILED_RESULTS",
    "INPUT_DATA": "PRODUCT/SUPPORT_DATA/INPUT_DATA",
}
_REQUIRED = (
    ("PRODUCT", "time"), ("PRODUCT", "delta_time"), ("PRODUCT", "qa_value"),
    ("PRODUCT", "latitude"), ("PRODUCT", "longitude"),
    ("PRODUCT", "methane_mixing_ratio_bias_corrected"), ("PRODUCT", "methane_mixing_ratio_precision"),
    ("GEOLOCATIONS", "latitude_bounds"), ("GEOLOCATIONS", "longitude_bounds"),
    ("DETAILED_RESULTS", "column_averaging_kernel"),
    ("INPUT_DATA", "surface_pressure"), ("INPUT_DATA", "pressure_interval"),
    ("INPUT_DATA", "methane_profile_apriori"), ("INPUT_DATA", "dry_air_subcolumns"),
)
_PPB_VARIABLES = ("methane_mixing_ratio_bias_corrected", "methane_mixing_ratio_precision")
REQUIRED_VARIABLES = tuple(
    Required(f"{_GROUPS[key]}/{name}", PPB_UNITS if name in _PPB_VARIABLES else None)
    for key, name in _REQUIRED
)
"""The variables (path, units, numeric values) without which :func:`read_tropomi_ch4` rejects a file."""
# carrier name -> (group, file name, units, long_name); per-pixel
_PIXEL_FIELDS = {
    "xch4": ("PRODUCT", "methane_mixing_ratio_bias_corrected", "ppb",
             "bias-corrected column-averaged dry air mole fraction of methane"),
    "xch4_precision": ("PRODUCT", "methane_mixing_ratio_precision", "ppb", "1-sigma precision of xch4"),
    "surface_pressure": ("INPUT_DATA", "surface_pressure", "Pa", "surface air pressure"),
    "pressure_interval": ("INPUT_DATA", "pressure_interval", "Pa", "pressure thickness of each layer"),
}
_LAYER_FIELDS = {
    "column_averaging_kernel": ("DETAILED_RESULTS", "column_averaging_kernel", "1",
                                "column averaging kernel, index 0 = surface layer"),
    "methane_profile_apriori": ("INPUT_DATA", "methane_profile_apriori", "mol m-2",
                                "a-priori methane sub-column, index 0 = surface layer"),
    "dry_air_subcolumns": ("INPUT_DATA", "dry_air_subcolumns", "mol m-2",
                           "dry air sub-column, index 0 = surface layer"),
}
_OPTIONAL_FIELDS = {
    "xch4_uncorrected": ("PRODUCT", "methane_mixing_ratio", "ppb",
                         "column-averaged dry air mole fraction of methane, not bias corrected"),
    "solar_zenith_angle": ("GEOLOCATIONS", "solar_zenith_angle", "degree", "solar zenith angle"),
    "viewing_zenith_angle": ("GEOLOCATIONS", "viewing_zenith_angle", "degree", "viewing zenith angle"),
    "solar_azimuth_angle": ("GEOLOCATIONS", "solar_azimuth_angle", "degree", "solar azimuth angle"),
    "viewing_azimuth_angle": ("GEOLOCATIONS", "viewing_azimuth_angle", "degree", "viewing azimuth angle"),
    "water_total_column": ("DETAILED_RESULTS", "water_total_column", "mol m-2", "water vapour column"),
    "surface_albedo_SWIR": ("DETAILED_RESULTS", "surface_albedo_SWIR", "1", "SWIR surface albedo"),
    "surface_albedo_NIR": ("DETAILED_RESULTS", "surface_albedo_NIR", "1", "NIR surface albedo"),
    "chi_square": ("DETAILED_RESULTS", "chi_square", "1", "chi square of the fit"),
    "eastward_wind": ("INPUT_DATA", "eastward_wind", "m s-1", "eastward wind"),
    "northward_wind": ("INPUT_DATA", "northward_wind", "m s-1", "northward wind"),
    "surface_altitude": ("INPUT_DATA", "surface_altitude", "m", "surface altitude"),
}


def _group(nc: netCDF4.Dataset, key: str) -> netCDF4.Dataset | None:
    group = nc
    for part in _GROUPS[key].split("/"):
        if part not in group.groups:
            return None
        group = group.groups[part]
    return group


def _variable(nc: netCDF4.Dataset, path: str | os.PathLike[str], key: str, name: str) -> netCDF4.Variable:
    group = _group(nc, key)
    if group is None:
        raise ProductFormatError(path, _GROUPS[key], "NetCDF group present")
    if name not in group.variables:
        raise ProductFormatError(path, f"{_GROUPS[key]}/{name}", "variable present")
    return group.variables[name]


def _optional(nc: netCDF4.Dataset, key: str, name: str) -> netCDF4.Variable | None:
    group = _group(nc, key)
    return None if group is None else group.variables.get(name)


def _check_layout(nc: netCDF4.Dataset, path: str | os.PathLike[str]) -> None:
    for key, name in _REQUIRED:
        _variable(nc, path, key, name)
    for name in _PPB_VARIABLES:
        units = getattr(_variable(nc, path, "PRODUCT", name), "units", None)
        if units not in PPB_UNITS:
            raise ProductFormatError(path, f"PRODUCT/{name}", f"units in {PPB_UNITS}, found {units!r}")
    nlayer = _variable(nc, path, "DETAILED_RESULTS", "column_averaging_kernel").shape[-1]
    if nlayer != 12:
        raise ProductFormatError(path, "PRODUCT/SUPPORT_DATA/DETAILED_RESULTS/column_averaging_kernel",
                                 f"12 layers, found {nlayer}")
    check_required(nc, path, REQUIRED_VARIABLES)


def _select_window(nc: netCDF4.Dataset, path: str | os.PathLike[str], bbox: BBox | None
                   ) -> tuple[slice, slice, np.ndarray]:
    """Scanline/ground-pixel slab around the pixels touching ``bbox`` and the in-slab pixel mask.

    A pixel is selected when the lon/lat extent of its corners (or its centre) overlaps the bbox.
    """
    lat = masked_to_nan(_variable(nc, path, "PRODUCT", "latitude")[0])
    if bbox is None:
        return slice(0, lat.shape[0]), slice(0, lat.shape[1]), np.isfinite(lat)
    lon = masked_to_nan(_variable(nc, path, "PRODUCT", "longitude")[0])
    lat_b = masked_to_nan(_variable(nc, path, "GEOLOCATIONS", "latitude_bounds")[0])
    lon_b = masked_to_nan(_variable(nc, path, "GEOLOCATIONS", "longitude_bounds")[0])
    dlon = (lon_b - lon[..., None] + 180.0) % 360.0 - 180.0
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN corners of fill pixels
        corners = overlaps_bbox(lon + np.nanmin(dlon, axis=-1), lon + np.nanmax(dlon, axis=-1),
                                np.nanmin(lat_b, axis=-1), np.nanmax(lat_b, axis=-1), bbox)
        centre = overlaps_bbox(lon, lon, lat, lat, bbox)
    mask = corners | centre
    if not mask.any():
        raise EmptyAOIError(path, bbox, "no TROPOMI pixel touches the bbox")
    rows, cols = np.nonzero(mask)
    scan = slice(int(rows.min()), int(rows.max()) + 1)
    gp = slice(int(cols.min()), int(cols.max()) + 1)
    return scan, gp, mask[scan, gp]


def _pixel_times(nc: netCDF4.Dataset, path: str | os.PathLike[str], scan: slice) -> np.ndarray:
    """Per-scanline times (datetime64[ns]) = time (s since 2010-01-01) + delta_time (ms)."""
    ref = int(np.ma.filled(_variable(nc, path, "PRODUCT", "time")[0], 0))
    delta = np.ma.filled(_variable(nc, path, "PRODUCT", "delta_time")[0, scan], 0).astype(np.int64)
    return _EPOCH_2010 + np.timedelta64(ref, "s") + delta.astype("timedelta64[ms]")


def _coordinate(nc: netCDF4.Dataset, name: str, window: slice) -> np.ndarray:
    product = _group(nc, "PRODUCT")
    if name in product.variables:
        return np.asarray(product.variables[name][window], dtype=np.int64)
    return np.arange(window.start, window.stop, dtype=np.int64)


def _build(nc: netCDF4.Dataset, path: str | os.PathLike[str], bbox: BBox | None) -> xr.Dataset:
    scan, gp, mask = _select_window(nc, path, bbox)
    qa = masked_to_nan(_variable(nc, path, "PRODUCT", "qa_value")[0, scan, gp])
    keep = mask & (qa >= QA_THRESHOLD)
    if not keep.any():
        raise EmptyAOIError(path, bbox, f"no pixel with qa_value >= {QA_THRESHOLD}")
    rows, cols = np.nonzero(keep)

    def pix(var: netCDF4.Variable, *extra: slice) -> np.ndarray:
        """The kept pixels of a (time, scanline, ground_pixel, ...) variable, fill -> NaN."""
        return masked_to_nan(var[(0, scan, gp, *extra)])[keep]

    data: dict[str, tuple] = {}
    for out, (key, name, units, long_name) in _PIXEL_FIELDS.items():
        data[out] = ("pixel", pix(_variable(nc, path, key, name)), {"units": units, "long_name": long_name})
    data["qa_value"] = ("pixel", qa[keep], {"units": "1", "long_name": "data quality value (0-1)"})
    for out, (key, name, units, long_name) in _LAYER_FIELDS.items():
        values = pix(_variable(nc, path, key, name), slice(None))[:, ::-1]
        data[out] = (("pixel", "layer"), values, {"units": units, "long_name": long_name})
    for out, (key, name, units, long_name) in _OPTIONAL_FIELDS.items():
        var = _optional(nc, key, name)
        if var is not None:
            data[out] = ("pixel", pix(var), {"units": units, "long_name": long_name})
    alt = _optional(nc, "INPUT_DATA", "altitude_levels")
    if alt is not None:
        data["altitude_levels"] = (("pixel", "level"), pix(alt, slice(None))[:, ::-1],
                                   {"units": "m", "long_name": "level altitude, index 0 = surface"})
    times = _pixel_times(nc, path, scan)[rows]
    coords = {
        "latitude": ("pixel", pix(_variable(nc, path, "PRODUCT", "latitude")),
                     {"units": "degrees_north", "long_name": "pixel centre latitude"}),
        "longitude": ("pixel", pix(_variable(nc, path, "PRODUCT", "longitude")),
                      {"units": "degrees_east", "long_name": "pixel centre longitude"}),
        "latitude_bounds": (("pixel", "corner"),
                            pix(_variable(nc, path, "GEOLOCATIONS", "latitude_bounds"), slice(None)),
                            {"units": "degrees_north", "long_name": "pixel corner latitudes"}),
        "longitude_bounds": (("pixel", "corner"),
                             pix(_variable(nc, path, "GEOLOCATIONS", "longitude_bounds"), slice(None)),
                             {"units": "degrees_east", "long_name": "pixel corner longitudes"}),
        "time": ("pixel", times, {"long_name": "measurement time (UTC)"}),
        "scanline": ("pixel", _coordinate(nc, "scanline", scan)[rows],
                     {"units": "1", "long_name": "scanline"}),
        "ground_pixel": ("pixel", _coordinate(nc, "ground_pixel", gp)[cols],
                         {"units": "1", "long_name": "across-track ground pixel"}),
    }
    attrs = {
        **provenance_attrs(path, str(getattr(nc, "processor_version", "unknown")), "TROPOMI",
                           iso_z(times.min()), iso_z(times.max())),
        "orbit": int(getattr(nc, "orbit", -1)),
        "qa_threshold": QA_THRESHOLD,
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def read_tropomi_ch4(path: str | os.PathLike[str], bbox: Sequence[float] | None = None) -> xr.Dataset:
    """Read the TROPOMI CH4 pixels touching ``bbox`` (west, south, east, north; degrees) with qa >= 0.5.

    Only the scanline/ground-pixel slab around the bbox is read for the science fields. Returns the
    carrier of docs/carriers.md (dims ``pixel``, ``layer`` = 12 with index 0 = surface, ``corner`` = 4):
    ``xch4`` (bias corrected) and ``xch4_precision`` in ppb, ``qa_value`` 0-1, per-layer
    ``column_averaging_kernel`` (1), ``methane_profile_apriori`` and ``dry_air_subcolumns`` (mol m-2),
    ``surface_pressure`` and ``pressure_interval`` (Pa), coords ``latitude``, ``longitude`` (+ ``_bounds``),
    ``time`` (datetime64[ns] UTC), ``scanline``, ``ground_pixel``; optional fields (winds, angles,
    albedo, ``altitude_levels(pixel, level)`` m, ``xch4_uncorrected``) when the file has them.
    ``time_coverage_start/end`` describe the returned pixels.

    Raises ProductFormatError (unreadable file, missing group/variable, wrong units) or EmptyAOIError.
    """
    return read_product(path, bbox, partial(netCDF4.Dataset, mode="r"), "NetCDF-4", _check_layout, _build)
