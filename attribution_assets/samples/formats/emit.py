"""Write an EMIT L1B radiance carrier as an ``EMIT_L1B_RAD_001_*.nc`` file (NetCDF-4 with groups).

Layout follows the EMIT L1B RAD V001 product (NASA LP DAAC ``EMITL1BRAD``, emit-sds writers):
root ``radiance(downtrack, crosstrack, bands)`` in uW/cm^2/SR/nm with ``_FillValue=-9999``; group
``sensor_band_parameters`` (``wavelengths``, ``fwhm`` in nm); group ``location`` (``lat``, ``lon``,
``elev`` and the 1-based geometry lookup table ``glt_x``/``glt_y`` on ``ortho_y, ortho_x``, 0 = no data,
``_FillValue=-9999`` declared); global attributes ``geotransform`` (GDAL order), ``spatial_ref`` (WKT),
``time_coverage_start/end`` ("%Y-%m-%dT%H:%M:%S%z"), bounding latitudes/longitudes, ``flight_line``,
``product_version="V001"``, ``instrument="EMIT"``, ``platform="ISS"`` and ``title``.
"""

from __future__ import annotations

import os
from datetime import datetime

import netCDF4
import numpy as np
import xarray as xr

from attribution_assets.atomic import atomic_path
from attribution_assets.times import as_utc

FILL = -9999
TITLE = "EMIT L1B At-Sensor Calibrated Radiance Data 60 m V001"
WKT_EPSG_4326 = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
    'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],'
    'UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],'
    'AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def emit_l1b_filename(start: datetime, orbit: str, scene: int) -> str:
    """Native EMIT L1B radiance name ``EMIT_L1B_RAD_001_<YYYYMMDDTHHMMSS>_<orbit7>_<scene3>.nc``.

    ``start`` is the scene start (naive = UTC); ``orbit`` the 7-digit orbit id (YYDOYNN); ``scene`` 1-999.
    """
    if len(orbit) != 7 or not orbit.isdigit():
        raise ValueError(f"EMIT orbit id must be 7 digits (YYDOYNN), got {orbit!r}")
    if not 0 <= scene <= 999:
        raise ValueError(f"EMIT scene number must be in 0..999, got {scene}")
    return f"EMIT_L1B_RAD_001_{as_utc(start):%Y%m%dT%H%M%S}_{orbit}_{scene:03d}.nc"


def geotransform_from_coords(ds: xr.Dataset) -> list[float]:
    """GDAL geotransform (x0, dx, 0, y0, 0, dy) in degrees from the ortho pixel centres ``x_lon``/``y_lat``.

    A grid axis of one pixel takes its spacing from ``ds.attrs["geotransform"]``.
    """
    x_lon = np.asarray(ds["x_lon"].values, dtype=np.float64)
    y_lat = np.asarray(ds["y_lat"].values, dtype=np.float64)
    fallback = ds.attrs.get("geotransform")
    dx = float(x_lon[-1] - x_lon[0]) / (x_lon.size - 1) if x_lon.size > 1 else float(fallback[1])
    dy = float(y_lat[-1] - y_lat[0]) / (y_lat.size - 1) if y_lat.size > 1 else float(fallback[5])
    return [float(x_lon[0] - 0.5 * dx), dx, 0.0, float(y_lat[0] - 0.5 * dy), 0.0, dy]


def _glt_one_based(index: np.ndarray) -> np.ndarray:
    """Carrier 0-based GLT (-1 = no data) -> file 1-based GLT (0 = no data)."""
    index = np.asarray(index, dtype=np.int64)
    return np.where(index >= 0, index + 1, 0).astype(np.int32)


def _global_attrs(ds: xr.Dataset, gt: list[float]) -> dict[str, object]:
    """The documented EMIT V001 global attributes for a carrier and its geotransform."""
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    start = as_utc(ds.attrs["time_coverage_start"])
    end = as_utc(ds.attrs["time_coverage_end"])
    return {
        "title": TITLE,
        "instrument": "EMIT",
        "platform": "ISS",
        "product_version": "V001",
        "time_coverage_start": start.strftime(_TIME_FORMAT),
        "time_coverage_end": end.strftime(_TIME_FORMAT),
        "flight_line": str(ds.attrs.get("flight_line", f"emit{start:%Y%m%dt%H%M%S}")),
        "geotransform": np.asarray(gt, dtype=np.float64),
        "spatial_ref": WKT_EPSG_4326,
        "northernmost_latitude": max(gt[3], gt[3] + ny * gt[5]),
        "southernmost_latitude": min(gt[3], gt[3] + ny * gt[5]),
        "westernmost_longitude": min(gt[0], gt[0] + nx * gt[1]),
        "easternmost_longitude": max(gt[0], gt[0] + nx * gt[1]),
    }


def _write_radiance(nc: netCDF4.Dataset, ds: xr.Dataset) -> None:
    """Root ``radiance(downtrack, crosstrack, bands)``, zlib-compressed, quantised to 1e-3."""
    rad = ds["radiance"].transpose("downtrack", "crosstrack", "band").values.astype(np.float32)
    chunks = (min(rad.shape[0], 64), min(rad.shape[1], 64), rad.shape[2])
    var = nc.createVariable(
        "radiance", "f4", ("downtrack", "crosstrack", "bands"), fill_value=np.float32(FILL),
        zlib=True, complevel=4, least_significant_digit=3, chunksizes=chunks,
    )
    var.units = "uW/cm^2/SR/nm"
    var.long_name = "Radiance Data"
    var[:] = np.where(np.isfinite(rad), rad, np.float32(FILL))


def _write_band_parameters(nc: netCDF4.Dataset, ds: xr.Dataset) -> None:
    """Group ``sensor_band_parameters``: ``wavelengths`` and ``fwhm`` (bands) in nm."""
    grp = nc.createGroup("sensor_band_parameters")
    for name, source, long_name in (
        ("wavelengths", "wavelength", "Wavelength Centers"),
        ("fwhm", "fwhm", "Full Width at Half Max"),
    ):
        var = grp.createVariable(name, "f4", ("bands",))
        var.units = "nm"
        var.long_name = long_name
        var[:] = np.asarray(ds[source].values, dtype=np.float32)


def _write_location(nc: netCDF4.Dataset, ds: xr.Dataset) -> None:
    """Group ``location``: lat/lon/elev (downtrack, crosstrack) and the 1-based GLT (ortho_y, ortho_x)."""
    grp = nc.createGroup("location")
    elev = ds["elev"] if "elev" in ds else xr.zeros_like(ds["lat"])
    for name, data, units, long_name in (
        ("lat", ds["lat"], "degrees_north", "Latitude (WGS-84)"),
        ("lon", ds["lon"], "degrees_east", "Longitude (WGS-84)"),
        ("elev", elev, "m", "Surface Elevation"),
    ):
        values = data.transpose("downtrack", "crosstrack").values.astype(np.float64)
        var = grp.createVariable(name, "f8", ("downtrack", "crosstrack"), fill_value=float(FILL), zlib=True)
        var.units = units
        var.long_name = long_name
        var[:] = np.where(np.isfinite(values), values, float(FILL))
    for name, source, long_name in (
        ("glt_x", "glt_col", "GLT Sample Lookup"),
        ("glt_y", "glt_row", "GLT Line Lookup"),
    ):
        var = grp.createVariable(name, "i4", ("ortho_y", "ortho_x"), fill_value=np.int32(FILL), zlib=True)
        var.long_name = long_name
        var.units = "pixel location"
        var[:] = _glt_one_based(ds[source].transpose("y", "x").values)


def write_emit_l1b(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write a full-scene EMIT carrier as an EMIT L1B RAD V001 NetCDF-4 file.

    ``ds`` follows docs/carriers.md for ``emit.read_emit_l1b`` with the whole scene: ``radiance
    (downtrack, crosstrack, band)`` in uW/cm^2/SR/nm (NaN = fill), coords ``wavelength(band)`` and
    ``fwhm(band)`` in nm, ``lat, lon(downtrack, crosstrack)`` in degrees (optional ``elev`` in m, 0 if
    absent), ``glt_row, glt_col(y, x)`` 0-based into the scene (-1 = no data) and ortho pixel centres
    ``y_lat(y)``, ``x_lon(x)`` in degrees (regular grid, latitude decreasing). Attributes
    ``time_coverage_start/end`` (ISO 8601) are required; ``flight_line`` is optional.
    The file is written to a temporary path and renamed into place.
    """
    gt = geotransform_from_coords(ds)
    with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.createDimension("downtrack", ds.sizes["downtrack"])
        nc.createDimension("crosstrack", ds.sizes["crosstrack"])
        nc.createDimension("bands", ds.sizes["band"])
        nc.createDimension("ortho_y", ds.sizes["y"])
        nc.createDimension("ortho_x", ds.sizes["x"])
        nc.setncatts(_global_attrs(ds, gt))
        _write_radiance(nc, ds)
        _write_band_parameters(nc, ds)
        _write_location(nc, ds)
