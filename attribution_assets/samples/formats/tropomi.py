"""Write a TROPOMI CH4 carrier as a Sentinel-5P L2 ``S5P_*_L2__CH4____*.nc`` file (NetCDF-4 with groups).

Layout follows the S5P L2 CH4 product (ESA/KNMI/SRON product user manual; satpy and HARP readers):
``/PRODUCT`` with dims ``time=1, scanline, ground_pixel, corner=4, layer=12, level=13``, ``time``
(seconds since 2010-01-01), ``delta_time`` (ms), ``time_utc``, ``qa_value`` (uint8, scale 0.01, fill 255),
``latitude/longitude`` and the ``methane_mixing_ratio*`` fields (units "1e-9");
``/PRODUCT/SUPPORT_DATA/GEOLOCATIONS`` (pixel corner bounds, angles), ``.../DETAILED_RESULTS``
(``column_averaging_kernel``) and ``.../INPUT_DATA`` (``surface_pressure``, ``pressure_interval`` in Pa,
``methane_profile_apriori``, ``dry_air_subcolumns`` in mol m-2, ``altitude_levels`` in m). Layers and
levels are stored top-of-atmosphere -> surface.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import netCDF4
import numpy as np
import xarray as xr

from attribution_assets.atomic import atomic_path
from attribution_assets.science.units import PRESSURE_SCALE_HEIGHT_M
from attribution_assets.times import as_utc, iso_z

FLOAT_FILL = np.float32(9.96921e36)
QA_FILL = np.uint8(255)
EPOCH_2010 = np.datetime64("2010-01-01T00:00:00", "ns")

# (group, file name, carrier name, per-layer?, units, long_name)
_MAIN_FIELDS = (
    ("PRODUCT", "methane_mixing_ratio_bias_corrected", "xch4", "1e-9",
     "bias-corrected column-averaged dry air mole fraction of methane"),
    ("PRODUCT", "methane_mixing_ratio_precision", "xch4_precision", "1e-9",
     "precision of the column-averaged dry air mole fraction of methane"),
    ("PRODUCT", "latitude", "latitude", "degrees_north", "pixel centre latitude"),
    ("PRODUCT", "longitude", "longitude", "degrees_east", "pixel centre longitude"),
    ("INPUT_DATA", "surface_pressure", "surface_pressure", "Pa", "surface air pressure"),
    ("INPUT_DATA", "pressure_interval", "pressure_interval", "Pa", "pressure difference between levels"),
)
_LAYER_FIELDS = (
    ("DETAILED_RESULTS", "column_averaging_kernel", "column_averaging_kernel", "1",
     "column averaging kernel"),
    ("INPUT_DATA", "methane_profile_apriori", "methane_profile_apriori", "mol m-2",
     "a-priori methane sub-column per layer"),
    ("INPUT_DATA", "dry_air_subcolumns", "dry_air_subcolumns", "mol m-2", "dry air sub-column per layer"),
)
OPTIONAL_FIELDS = (
    ("GEOLOCATIONS", "solar_zenith_angle", "degree", "solar zenith angle"),
    ("GEOLOCATIONS", "viewing_zenith_angle", "degree", "viewing zenith angle"),
    ("GEOLOCATIONS", "solar_azimuth_angle", "degree", "solar azimuth angle"),
    ("GEOLOCATIONS", "viewing_azimuth_angle", "degree", "viewing azimuth angle"),
    ("DETAILED_RESULTS", "water_total_column", "mol m-2", "water vapour total column"),
    ("DETAILED_RESULTS", "surface_albedo_SWIR", "1", "surface albedo in the SWIR band"),
    ("DETAILED_RESULTS", "surface_albedo_NIR", "1", "surface albedo in the NIR band"),
    ("DETAILED_RESULTS", "chi_square", "1", "chi square of the fit"),
    ("INPUT_DATA", "eastward_wind", "m s-1", "eastward wind"),
    ("INPUT_DATA", "northward_wind", "m s-1", "northward wind"),
    ("INPUT_DATA", "surface_altitude", "m", "surface altitude"),
)
"""Optional per-pixel variables: (group, name, units, long_name); written when the carrier has them."""


def tropomi_ch4_filename(
    start: datetime,
    end: datetime,
    orbit: int,
    processor: str = "020600",
    mode: str = "OFFL",
    collection: str = "03",
    production: datetime | None = None,
) -> str:
    """Native S5P name.

    ``S5P_<mode>_L2__CH4____<start>_<end>_<orbit5>_<collection2>_<processor6>_<production>.nc``.

    Times are UTC (naive = UTC) formatted ``YYYYMMDDTHHMMSS``; ``production`` defaults to ``end`` plus
    one day so the name is deterministic.
    """
    if mode not in ("OFFL", "NRTI", "RPRO"):
        raise ValueError(f"TROPOMI processing mode must be OFFL, NRTI or RPRO, got {mode!r}")
    if len(processor) != 6 or not processor.isdigit():
        raise ValueError(f"TROPOMI processor version must be 6 digits, got {processor!r}")
    produced = as_utc(production) if production is not None else as_utc(end) + timedelta(days=1)
    fmt = "%Y%m%dT%H%M%S"
    return (
        f"S5P_{mode}_L2__CH4____{as_utc(start):{fmt}}_{as_utc(end):{fmt}}_{orbit:05d}_{collection}_"
        f"{processor}_{produced:{fmt}}.nc"
    )


def _grid_index(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scanline and ground-pixel coordinate values of the grid, and each pixel's (row, col) in it."""
    scan = np.asarray(ds["scanline"].values, dtype=np.int64)
    gp = np.asarray(ds["ground_pixel"].values, dtype=np.int64)
    scan_values = np.arange(scan.min(), scan.max() + 1)
    gp_values = np.arange(gp.min(), gp.max() + 1)
    return scan_values, gp_values, scan - scan.min(), gp - gp.min()


def _to_grid(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, ...],
             fill: np.generic) -> np.ndarray:
    """Scatter per-pixel values (pixel, ...) onto a (1, scanline, ground_pixel, ...) grid of ``fill``."""
    grid = np.full((1, *shape, *values.shape[1:]), fill, dtype=np.asarray(fill).dtype)
    clean = np.where(np.isfinite(values), values, fill) if values.dtype.kind == "f" else values
    grid[0, rows, cols] = clean
    return grid


def _reference_and_delta(ds: xr.Dataset, rows: np.ndarray, n_scan: int) -> tuple[int, np.ndarray]:
    """``time`` (s since 2010-01-01, start of the first day) and per-scanline ``delta_time`` in ms."""
    times = np.asarray(ds["time"].values, dtype="datetime64[ns]")
    day0 = times.min().astype("datetime64[D]").astype("datetime64[ns]")
    ref_s = int((day0 - EPOCH_2010) // np.timedelta64(1, "s"))
    ms = ((times - day0) // np.timedelta64(1, "ms")).astype(np.float64)
    known = np.full(n_scan, np.nan)
    order = np.argsort(rows, kind="stable")
    uniq, first = np.unique(rows[order], return_index=True)
    known[uniq] = ms[order][first]
    idx = np.arange(n_scan)
    have = np.isfinite(known)
    delta = np.interp(idx, idx[have], known[have])
    return ref_s, np.rint(delta).astype(np.int32)[None, :]


def _new_var(grp: netCDF4.Dataset, name: str, dtype: str, dims: tuple[str, ...], fill: object,
             units: str, long_name: str) -> netCDF4.Variable:
    var = grp.createVariable(name, dtype, dims, fill_value=fill, zlib=True, complevel=4)
    var.set_auto_maskandscale(False)
    var.units = units
    var.long_name = long_name
    return var


def _create_groups(nc: netCDF4.Dataset, n_scan: int, n_gp: int) -> dict[str, netCDF4.Dataset]:
    product = nc.createGroup("PRODUCT")
    for name, size in (("time", 1), ("scanline", n_scan), ("ground_pixel", n_gp), ("corner", 4),
                       ("layer", 12), ("level", 13)):
        product.createDimension(name, size)
    support = product.createGroup("SUPPORT_DATA")
    groups = {"PRODUCT": product}
    for name in ("GEOLOCATIONS", "DETAILED_RESULTS", "INPUT_DATA"):
        groups[name] = support.createGroup(name)
    return groups


def _write_coordinates(product: netCDF4.Dataset, scan_values: np.ndarray, gp_values: np.ndarray,
                       ref_s: int, delta_ms: np.ndarray) -> None:
    for name, values in (("scanline", scan_values), ("ground_pixel", gp_values),
                         ("corner", np.arange(4)), ("layer", np.arange(12)), ("level", np.arange(13))):
        var = product.createVariable(name, "i4", (name,))
        var.units = "1"
        var[:] = values.astype(np.int32)
    t = product.createVariable("time", "i4", ("time",))
    t.units = "seconds since 2010-01-01 00:00:00"
    t.standard_name = "time"
    t[:] = np.array([ref_s], dtype=np.int32)
    dt = product.createVariable("delta_time", "i4", ("time", "scanline"))
    dt.units = "milliseconds"
    dt.long_name = "offset of start time of measurement relative to time"
    dt[:] = delta_ms
    utc = product.createVariable("time_utc", str, ("time", "scanline"))
    ref = datetime(2010, 1, 1, tzinfo=UTC) + timedelta(seconds=ref_s)
    stamps = [(ref + timedelta(milliseconds=int(ms))).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for ms in delta_ms[0]]
    utc[:] = np.array(stamps, dtype=object)[None, :]


def _altitude_levels(ds: xr.Dataset) -> np.ndarray:
    """Level altitudes (pixel, level), index 0 = surface, in m: the carrier's or a barometric estimate.

    The estimate uses the equal-pressure level edges ``p_s - k dp`` and an 8 km scale height
    (pressures clipped at 1 hPa); it is only a placeholder for files built from carriers without them.
    """
    if "altitude_levels" in ds:
        return np.asarray(ds["altitude_levels"].transpose("pixel", "level").values, dtype=np.float64)
    ps = np.asarray(ds["surface_pressure"].values, dtype=np.float64)[:, None]
    dp = np.asarray(ds["pressure_interval"].values, dtype=np.float64)[:, None]
    surface_alt = np.asarray(ds["surface_altitude"].values)[:, None] if "surface_altitude" in ds else 0.0
    p = np.maximum(ps - np.arange(13)[None, :] * dp, 100.0)
    return surface_alt + PRESSURE_SCALE_HEIGHT_M * np.log(ps / p)


def _write_fields(groups: dict[str, netCDF4.Dataset], ds: xr.Dataset, rows: np.ndarray, cols: np.ndarray,
                  shape: tuple[int, int]) -> None:
    base = ("time", "scanline", "ground_pixel")
    for group, name, source, units, long_name in _MAIN_FIELDS:
        var = _new_var(groups[group], name, "f4", base, FLOAT_FILL, units, long_name)
        var[:] = _to_grid(ds[source].values.astype(np.float32), rows, cols, shape, FLOAT_FILL)
    uncorrected = ds["xch4_uncorrected"] if "xch4_uncorrected" in ds else ds["xch4"]
    var = _new_var(groups["PRODUCT"], "methane_mixing_ratio", "f4", base, FLOAT_FILL, "1e-9",
                   "column-averaged dry air mole fraction of methane")
    var[:] = _to_grid(uncorrected.values.astype(np.float32), rows, cols, shape, FLOAT_FILL)
    qa = np.rint(np.clip(np.nan_to_num(ds["qa_value"].values, nan=0.0), 0.0, 1.0) * 100).astype(np.uint8)
    var = _new_var(groups["PRODUCT"], "qa_value", "u1", base, QA_FILL, "1", "data quality value")
    var.scale_factor = np.float32(0.01)
    var.add_offset = np.float32(0.0)
    var[:] = _to_grid(qa, rows, cols, shape, QA_FILL)
    for name in ("latitude_bounds", "longitude_bounds"):
        units = "degrees_north" if name.startswith("lat") else "degrees_east"
        var = _new_var(groups["GEOLOCATIONS"], name, "f4", (*base, "corner"), FLOAT_FILL, units,
                       f"pixel corner {name[:-7]}")
        var[:] = _to_grid(ds[name].transpose("pixel", "corner").values.astype(np.float32), rows, cols, shape,
                          FLOAT_FILL)
    for group, name, source, units, long_name in _LAYER_FIELDS:
        var = _new_var(groups[group], name, "f4", (*base, "layer"), FLOAT_FILL, units, long_name)
        surface_first = ds[source].transpose("pixel", "layer").values.astype(np.float32)
        var[:] = _to_grid(surface_first[:, ::-1], rows, cols, shape, FLOAT_FILL)
    var = _new_var(groups["INPUT_DATA"], "altitude_levels", "f4", (*base, "level"), FLOAT_FILL, "m",
                   "altitude of the level edges")
    var[:] = _to_grid(_altitude_levels(ds)[:, ::-1].astype(np.float32), rows, cols, shape, FLOAT_FILL)
    for group, name, units, long_name in OPTIONAL_FIELDS:
        if name in ds:
            var = _new_var(groups[group], name, "f4", base, FLOAT_FILL, units, long_name)
            var[:] = _to_grid(ds[name].values.astype(np.float32), rows, cols, shape, FLOAT_FILL)


def _global_attrs(ds: xr.Dataset) -> dict[str, object]:
    times = np.asarray(ds["time"].values, dtype="datetime64[ns]")
    return {
        "title": "TROPOMI/S5P Methane L2 product",
        "Conventions": "CF-1.7",
        "platform": "S5P",
        "sensor": "TROPOMI",
        "ProductShortName": "L2__CH4___",
        "orbit": np.int32(ds.attrs.get("orbit", 0)),
        "processor_version": str(ds.attrs.get("processor_version", "02.06.00")),
        "time_coverage_start": iso_z(ds.attrs.get("time_coverage_start", times.min())),
        "time_coverage_end": iso_z(ds.attrs.get("time_coverage_end", times.max())),
    }


def write_tropomi_ch4(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write a TROPOMI CH4 carrier as an S5P L2 CH4 NetCDF-4 file.

    ``ds`` follows docs/carriers.md for ``tropomi.read_tropomi_ch4`` (dims ``pixel, layer=12, corner=4``;
    ``layer`` index 0 = surface; ``xch4``/``xch4_precision`` in ppb; ``qa_value`` 0-1; ``time(pixel)``
    datetime64 UTC, equal within a scanline). The integer ``scanline``/``ground_pixel`` coords place each
    pixel on the swath grid, which spans their min..max; cells without a pixel get the fill values.
    Optional: ``xch4_uncorrected`` (written as ``methane_mixing_ratio``; default ``xch4``),
    ``altitude_levels(pixel, level=13)`` m surface first (default: barometric estimate), the variables
    in ``OPTIONAL_FIELDS``, attrs ``orbit``, ``processor_version``, ``time_coverage_start/end``.
    """
    scan_values, gp_values, rows, cols = _grid_index(ds)
    shape = (scan_values.size, gp_values.size)
    if np.unique(rows * shape[1] + cols).size != rows.size:
        raise ValueError("TROPOMI carrier has two pixels with the same (scanline, ground_pixel)")
    ref_s, delta_ms = _reference_and_delta(ds, rows, shape[0])
    with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.setncatts(_global_attrs(ds))
        groups = _create_groups(nc, *shape)
        _write_coordinates(groups["PRODUCT"], scan_values, gp_values, ref_s, delta_ms)
        _write_fields(groups, ds, rows, cols, shape)
