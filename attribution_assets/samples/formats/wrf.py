"""Write a WRF carrier (``readers.wrf.read_wrf`` layout) as a native ``wrfout_d0N_YYYY-MM-DD_HH:MM:SS`` file.

Mass-point winds are put back on the Arakawa C grid (Skamarock et al. 2019, NCAR/TN-556+STR):
interior faces get the mean of their two neighbouring mass points, the two boundary faces a linear
extrapolation. For winds linear along the staggered axis this is exact, so destaggering on read
returns the input; in general the read-back is the input smoothed by a 1-2-1 filter along that axis.
Earth-relative winds are rotated back to grid-relative when the carrier has ``cosalpha``/``sinalpha``.
"""

from __future__ import annotations

import os
from datetime import datetime

import netCDF4
import numpy as np
import xarray as xr

from attribution_assets.atomic import atomic_path
from attribution_assets.times import as_utc

WRF_TIME_FORMAT = "%Y-%m-%d_%H:%M:%S"
_MASS_2D = {"u10": "U10", "v10": "V10", "pblh": "PBLH", "psfc": "PSFC", "hgt": "HGT",
            "hfx": "HFX", "t2": "T2", "znt": "ZNT", "cosalpha": "COSALPHA", "sinalpha": "SINALPHA"}
_UNITS = {"U10": "m s-1", "V10": "m s-1", "PBLH": "m", "PSFC": "Pa", "HGT": "m", "HFX": "W m-2", "T2": "K",
          "ZNT": "m", "COSALPHA": "", "SINALPHA": "", "U": "m s-1", "V": "m s-1", "XLAT": "degree_north",
          "XLONG": "degree_east"}
_REQUIRED = ("u10", "v10", "u", "v", "pblh", "psfc", "hgt", "lat", "lon", "time")


def wrf_filename(domain: int, start: datetime | np.datetime64 | str) -> str:
    """Native WRF output name, e.g. ``wrfout_d01_2024-06-01_18:00:00``."""
    return f"wrfout_d{int(domain):02d}_{as_utc(start).strftime(WRF_TIME_FORMAT)}"


def stagger(values: np.ndarray, axis: int) -> np.ndarray:
    """Face values (n + 1 along ``axis``) from mass values.

    Interior faces: mean of the two neighbouring mass points; boundary faces: linear extrapolation.
    """
    values = np.moveaxis(np.asarray(values, np.float64), axis, -1)
    if values.shape[-1] < 2:
        faces = np.concatenate([values, values], axis=-1)
    else:
        inner = 0.5 * (values[..., :-1] + values[..., 1:])
        first = 1.5 * values[..., :1] - 0.5 * values[..., 1:2]
        last = 1.5 * values[..., -1:] - 0.5 * values[..., -2:-1]
        faces = np.concatenate([first, inner, last], axis=-1)
    return np.moveaxis(faces, -1, axis)


def _rotation(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray] | None:
    """``(cos(alpha), sin(alpha))`` (time, south_north, west_east) when the carrier has them."""
    if not {"cosalpha", "sinalpha"} <= set(ds.variables):
        return None
    order = ("time", "south_north", "west_east")
    return (np.asarray(ds["cosalpha"].transpose(*order).values, np.float64),
            np.asarray(ds["sinalpha"].transpose(*order).values, np.float64))


def _grid_relative(u: np.ndarray, v: np.ndarray, rotation: tuple[np.ndarray, np.ndarray] | None):
    """Inverse of WRF's earth rotation: ``u_g = u cos + v sin``, ``v_g = v cos - u sin``."""
    if rotation is None:
        return u, v
    cos_a, sin_a = rotation
    if u.ndim == cos_a.ndim + 1:
        cos_a, sin_a = cos_a[:, None], sin_a[:, None]
    return u * cos_a + v * sin_a, v * cos_a - u * sin_a


def _define(
    nc: netCDF4.Dataset, name: str, dims: tuple[str, ...], data: np.ndarray, description: str = ""
) -> None:
    var = nc.createVariable(name, "f4", dims)
    var[:] = np.asarray(data, np.float32)
    var.units = _UNITS.get(name, "")
    var.description = description or name
    var.MemoryOrder = "XYZ"[: len(dims) - 1][::-1] if len(dims) > 1 else "0"
    var.stagger = "X" if "west_east_stag" in dims else ("Y" if "south_north_stag" in dims else "")


def _global_attrs(ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray) -> dict:
    ny, nx = lat.shape
    defaults = {"DX": 3000.0, "DY": 3000.0, "MAP_PROJ": 3, "CEN_LAT": float(lat[ny // 2, nx // 2]),
                "CEN_LON": float(lon[ny // 2, nx // 2]), "TRUELAT1": float(lat[ny // 2, nx // 2]),
                "TRUELAT2": float(lat[ny // 2, nx // 2]), "STAND_LON": float(lon[ny // 2, nx // 2])}
    out = {k: ds.attrs.get(k, v) for k, v in defaults.items()}
    out["TITLE"] = str(ds.attrs.get("product_version", " OUTPUT FROM WRF V4.5 MODEL"))
    return out


def write_wrf(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write the carrier ``ds`` to ``path`` as a wrfout NetCDF file (atomic: temporary file, then rename).

    ``ds`` needs ``time``, ``lat, lon(south_north, west_east)``, ``u10, v10, pblh, psfc, hgt``
    (time, south_north, west_east) and ``u, v`` (time, bottom_top, south_north, west_east), winds
    earth-relative in m s-1; ``hfx, t2, znt, cosalpha, sinalpha`` are written when present.
    """
    missing = [name for name in _REQUIRED if name not in ds.variables]
    if missing:
        raise ValueError(f"write_wrf: dataset lacks {missing}")
    order3 = ("time", "south_north", "west_east")
    order4 = ("time", "bottom_top", "south_north", "west_east")
    times = np.atleast_1d(np.asarray(ds["time"].values, "datetime64[ns]"))
    lat, lon = np.asarray(ds["lat"].values, np.float64), np.asarray(ds["lon"].values, np.float64)
    nt, (ny, nx) = times.size, lat.shape
    u3, v3 = (np.asarray(ds[k].transpose(*order4).values, np.float64) for k in ("u", "v"))
    rotation = _rotation(ds)
    u3, v3 = _grid_relative(u3, v3, rotation)
    fields2 = {
        k: np.asarray(ds[k].transpose(*order3).values, np.float64) for k in _MASS_2D if k in ds.variables
    }
    fields2["u10"], fields2["v10"] = _grid_relative(fields2["u10"], fields2["v10"], rotation)
    with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        for name, size in (("Time", None), ("DateStrLen", 19), ("bottom_top", u3.shape[1]),
                           ("south_north", ny), ("west_east", nx), ("south_north_stag", ny + 1),
                           ("west_east_stag", nx + 1)):
            nc.createDimension(name, size)
        text = np.array([as_utc(t).strftime(WRF_TIME_FORMAT) for t in times], dtype="S19")
        nc.createVariable("Times", "S1", ("Time", "DateStrLen"))[:] = netCDF4.stringtochar(text)
        m2 = ("Time", "south_north", "west_east")
        _define(nc, "XLAT", m2, np.broadcast_to(lat, (nt, ny, nx)), "LATITUDE, SOUTH IS NEGATIVE")
        _define(nc, "XLONG", m2, np.broadcast_to(lon, (nt, ny, nx)), "LONGITUDE, WEST IS NEGATIVE")
        for key, data in fields2.items():
            _define(nc, _MASS_2D[key], m2, data)
        _define(nc, "U", ("Time", "bottom_top", "south_north", "west_east_stag"), stagger(u3, axis=3),
                "x-wind component")
        _define(nc, "V", ("Time", "bottom_top", "south_north_stag", "west_east"), stagger(v3, axis=2),
                "y-wind component")
        nc.setncatts(_global_attrs(ds, lat, lon))
