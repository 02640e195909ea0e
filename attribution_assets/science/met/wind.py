"""Meteorology at the source for each overpass: the wind prior of the inversion.

:func:`wind_at_era5` and :func:`wind_at_wrf` turn a reanalysis/model carrier (docs/carriers.md and
:func:`attribution_assets.readers.wrf.read_wrf`) into one :class:`OverpassWind` per overpass:

- ``u_m_s, v_m_s``: the **10 m wind** at the source, bilinear in space and linear in time. This is
  the plume model's transport wind: the IME/CSF effective-wind calibrations (Varon et al. 2018,
  AMT 11, 5673; Varon et al. 2021, AMT 14, 2771) and the Pasquill classes are all defined on U10,
  so the Gaussian plume is driven by the same wind.
- ``u_pbl_m_s, v_pbl_m_s``: a boundary-layer wind for reference: the mean of the pressure-level
  winds below the boundary-layer top when the file has them, else the 100 m wind (ERA5) or the
  lowest model level (WRF).
- ``speed_sd_m_s``: the larger of the spread (standard deviation) of the 10 m wind speed over the
  3 x 3 neighbouring grid points at t - 1 h, t, t + 1 h and the SRON wind error model (50 % of the
  speed for U10 <= 3 m s-1, else 1.5 m s-1, the error model SRON applies to reanalysis winds in its
  satellite plume quantification).
- ``direction_sd_rad``: the largest of ``atan(speed_sd / speed)``, the directional spread of the same
  neighbours, and a 10 degree floor.
- ``stability_index``: Golder (1972) from the Obukhov length when the surface sensible heat flux
  and roughness are present, else the Pasquill (1961) table from the solar elevation and cloud cover
  (:mod:`attribution_assets.science.met.stability`).

Pure computation on in-memory datasets: no file I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import xarray as xr

from attribution_assets.science.met import stability
from attribution_assets.science.units import STANDARD_PRESSURE_PA

DIRECTION_SD_FLOOR_RAD = math.radians(10.0)
SCALE_HEIGHT_M = 8000.0
DEFAULT_PBLH_M = 1000.0
SPREAD_HALF_WINDOW = timedelta(hours=1)
SINGLE_STEP_TOLERANCE = timedelta(minutes=30)
ERA5_SSHF_ACCUMULATION_S = 3600.0


@dataclass(frozen=True)
class OverpassWind:
    """Wind and boundary-layer state at the source at one overpass time.

    ``u_m_s``/``v_m_s`` point where the air goes (east/north, m s-1); ``speed_sd_m_s`` and
    ``direction_sd_rad`` are 1-sigma prior uncertainties; ``stability_index`` in [0, 5]
    (Pasquill-Gifford A..F); ``pblh_m`` boundary-layer height (m); ``surface_pressure_pa`` (Pa).
    Optional: the 10 m and boundary-layer wind components (m s-1), the class string
    (``"D"``, ``"B-C"``), how stability was derived and notes on fallbacks used.
    """

    time: datetime
    u_m_s: float
    v_m_s: float
    speed_sd_m_s: float
    direction_sd_rad: float
    stability_index: float
    pblh_m: float
    surface_pressure_pa: float
    source: str
    u10_m_s: float = math.nan
    v10_m_s: float = math.nan
    u_pbl_m_s: float = math.nan
    v_pbl_m_s: float = math.nan
    stability_class: str = ""
    stability_method: str = ""
    notes: str = ""

    @property
    def speed_m_s(self) -> float:
        """Wind speed (m s-1)."""
        return math.hypot(self.u_m_s, self.v_m_s)

    @property
    def direction_to_rad(self) -> float:
        """Direction the air moves to, mathematical angle (radians, counter-clockwise from east)."""
        return math.atan2(self.v_m_s, self.u_m_s)

    @property
    def wind_from_deg(self) -> float:
        """Meteorological direction the wind blows from (degrees clockwise from north)."""
        return (math.degrees(math.atan2(-self.u_m_s, -self.v_m_s)) + 360.0) % 360.0


def sron_wind_speed_error_m_s(speed_m_s: float) -> float:
    """SRON wind error model (m s-1): 50 % of the speed for U10 <= 3 m s-1, else 1.5 m s-1."""
    return 0.5 * float(speed_m_s) if speed_m_s <= 3.0 else 1.5


def direction_sd_from_speed_sd_rad(speed_m_s: float, speed_sd_m_s: float) -> float:
    """Direction 1-sigma (rad) of an isotropic vector error: ``atan(sd / speed)``, floored at 10 deg."""
    return max(math.atan2(float(speed_sd_m_s), max(float(speed_m_s), 1e-6)), DIRECTION_SD_FLOOR_RAD)


# --------------------------------------------------------------------------------------------
# Interpolation stencils
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stencil:
    """Weights that evaluate a (time, ..., y, x) field at one point and time."""

    time_terms: tuple[tuple[int, float], ...]
    space_terms: tuple[tuple[int, int, float], ...]
    nearest_yx: tuple[int, int]
    shape_yx: tuple[int, int]
    spread_time_terms: tuple[tuple[tuple[int, float], ...], ...]


def _to_datetime64(time: Any) -> np.datetime64:
    if isinstance(time, datetime):
        if time.tzinfo is not None:
            time = time.astimezone(UTC).replace(tzinfo=None)
        return np.datetime64(time, "ns")
    return np.datetime64(time, "ns")


def _to_datetime(time: np.datetime64) -> datetime:
    micros = int(np.datetime64(time, "us").astype(np.int64))
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _time_terms(times: np.ndarray, t: np.datetime64, source: str) -> tuple[tuple[int, float], ...]:
    """Linear-in-time weights; raises naming the file's time range when ``t`` is outside it."""
    seconds = (times - times[0]).astype("timedelta64[ns]").astype(np.float64) / 1e9
    target = float((t - times[0]).astype("timedelta64[ns]").astype(np.float64)) / 1e9
    if times.size == 1:
        if abs(target) > SINGLE_STEP_TOLERANCE.total_seconds():
            raise ValueError(f"time {t} is outside the {source} file's single time step {times[0]} "
                             f"(tolerance {SINGLE_STEP_TOLERANCE})")
        return ((0, 1.0),)
    if np.any(np.diff(seconds) <= 0):
        raise ValueError(f"{source} time coordinate is not strictly increasing")
    if not seconds[0] <= target <= seconds[-1]:
        raise ValueError(f"time {t} is outside the {source} file's range [{times[0]}, {times[-1]}]")
    i = int(np.clip(np.searchsorted(seconds, target, side="right") - 1, 0, seconds.size - 2))
    w = (target - seconds[i]) / (seconds[i + 1] - seconds[i])
    return ((i, 1.0 - w), (i + 1, w))


def _clipped_time_terms(times: np.ndarray, t: np.datetime64, source: str) -> tuple[tuple[int, float], ...]:
    clipped = np.clip(t, times[0], times[-1]) if times.size > 1 else times[0]
    return _time_terms(times, clipped, source)


def _spread_terms(
    times: np.ndarray, t: np.datetime64, source: str
) -> tuple[tuple[tuple[int, float], ...], ...]:
    half = np.timedelta64(int(SPREAD_HALF_WINDOW.total_seconds()), "s")
    return tuple(_clipped_time_terms(times, t + k * half, source) for k in (-1, 0, 1))


def _axis_terms(coord: np.ndarray, value: float, name: str, source: str) -> tuple[tuple[int, float], ...]:
    if coord.size == 1:
        if not np.isclose(coord[0], value):
            raise ValueError(f"{name} {value} is outside the {source} file's single grid point {coord[0]}")
        return ((0, 1.0),)
    if not coord[0] <= value <= coord[-1]:
        raise ValueError(f"{name} {value} is outside the {source} file's range [{coord[0]}, {coord[-1]}]")
    i = int(np.clip(np.searchsorted(coord, value, side="right") - 1, 0, coord.size - 2))
    w = (value - coord[i]) / (coord[i + 1] - coord[i])
    return ((i, 1.0 - w), (i + 1, w))


def _era5_stencil(era5: xr.Dataset, lon: float, lat: float, t: np.datetime64) -> _Stencil:
    lats = np.asarray(era5["latitude"].values, np.float64)
    lons = np.asarray(era5["longitude"].values, np.float64)
    lon_q = (float(lon) + 180.0) % 360.0 - 180.0
    if lons.max() > 180.0 and lon_q < 0.0:
        lon_q += 360.0
    rows = _axis_terms(lats, float(lat), "latitude", "ERA5")
    cols = _axis_terms(lons, lon_q, "longitude", "ERA5")
    times = np.asarray(era5["time"].values, "datetime64[ns]")
    return _Stencil(
        time_terms=_time_terms(times, t, "ERA5"),
        space_terms=tuple((i, j, wi * wj) for i, wi in rows for j, wj in cols),
        nearest_yx=(int(np.argmin(np.abs(lats - lat))), int(np.argmin(np.abs(lons - lon_q)))),
        shape_yx=(lats.size, lons.size),
        spread_time_terms=_spread_terms(times, t, "ERA5"),
    )


def _invert_bilinear(
    corners_lon: np.ndarray, corners_lat: np.ndarray, lon: float, lat: float
) -> tuple[float, float]:
    """Fractional (s, t) in a cell with corners (00, 10, 01, 11) = (x, x+1, y+1, ...) by Newton iteration."""
    s, t = 0.5, 0.5
    p00, p10, p01, p11 = (np.array([corners_lon[k], corners_lat[k]]) for k in range(4))
    target = np.array([lon, lat])
    for _ in range(20):
        value = (1 - s) * (1 - t) * p00 + s * (1 - t) * p10 + (1 - s) * t * p01 + s * t * p11
        d_ds = (1 - t) * (p10 - p00) + t * (p11 - p01)
        d_dt = (1 - s) * (p01 - p00) + s * (p11 - p10)
        jac = np.column_stack([d_ds, d_dt])
        try:
            step = np.linalg.solve(jac, target - value)
        except np.linalg.LinAlgError:
            return math.nan, math.nan
        s, t = s + step[0], t + step[1]
        if np.max(np.abs(step)) < 1e-12:
            break
    return float(s), float(t)


def _curvilinear_terms(
    lon2d: np.ndarray, lat2d: np.ndarray, lon: float, lat: float, source: str
) -> tuple[tuple[tuple[int, int, float], ...], tuple[int, int]]:
    ny, nx = lon2d.shape
    scale = math.cos(math.radians(lat))
    distance = ((lon2d - lon) * scale) ** 2 + (lat2d - lat) ** 2
    iy, ix = (int(v) for v in np.unravel_index(np.argmin(distance), distance.shape))
    eps = 1e-9
    for j0 in (iy - 1, iy):
        for i0 in (ix - 1, ix):
            if not (0 <= j0 < ny - 1 and 0 <= i0 < nx - 1):
                continue
            idx = ((j0, i0), (j0, i0 + 1), (j0 + 1, i0), (j0 + 1, i0 + 1))
            corners_lon = np.array([lon2d[k] for k in idx])
            s, t = _invert_bilinear(corners_lon, np.array([lat2d[k] for k in idx]), lon, lat)
            if -eps <= s <= 1 + eps and -eps <= t <= 1 + eps:
                s, t = min(max(s, 0.0), 1.0), min(max(t, 0.0), 1.0)
                weights = ((1 - s) * (1 - t), s * (1 - t), (1 - s) * t, s * t)
                return tuple((j, i, w) for (j, i), w in zip(idx, weights, strict=True)), (iy, ix)
    raise ValueError(f"point (lon={lon}, lat={lat}) is outside the {source} domain "
                     f"(lon {lon2d.min():.3f}..{lon2d.max():.3f}, lat {lat2d.min():.3f}..{lat2d.max():.3f})")


def _wrf_stencil(wrf: xr.Dataset, lon: float, lat: float, t: np.datetime64) -> _Stencil:
    lon2d = np.asarray(wrf["lon"].values, np.float64)
    lat2d = np.asarray(wrf["lat"].values, np.float64)
    space, nearest = _curvilinear_terms(lon2d, lat2d, float(lon), float(lat), "WRF")
    times = np.asarray(wrf["time"].values, "datetime64[ns]")
    return _Stencil(_time_terms(times, t, "WRF"), space, nearest, lon2d.shape, _spread_terms(times, t, "WRF"))


def _time_first(da: xr.DataArray, ydim: str, xdim: str) -> np.ndarray:
    if "time" not in da.dims:
        da = da.expand_dims(time=1)
    return np.asarray(da.transpose("time", ..., ydim, xdim).values, np.float64)


def _evaluate(values: np.ndarray, stencil: _Stencil) -> np.ndarray:
    """Value (...) of a (time, ..., y, x) array at the stencil's point and time."""
    terms = stencil.time_terms if values.shape[0] > 1 else ((0, 1.0),)
    return sum(wt * ws * values[it, ..., iy, ix] for it, wt in terms for iy, ix, ws in stencil.space_terms)


def _neighbours(values: np.ndarray, stencil: _Stencil) -> np.ndarray:
    """Values at the 3 x 3 grid points around the nearest one, at t - 1 h, t, t + 1 h (flattened)."""
    iy, ix = stencil.nearest_yx
    ny, nx = stencil.shape_yx
    rows = slice(max(iy - 1, 0), min(iy + 2, ny))
    cols = slice(max(ix - 1, 0), min(ix + 2, nx))
    samples = []
    for terms in stencil.spread_time_terms:
        terms = terms if values.shape[0] > 1 else ((0, 1.0),)
        samples.append(sum(w * values[it, rows, cols] for it, w in terms).ravel())
    return np.concatenate(samples)


# --------------------------------------------------------------------------------------------
# Assembling the prior
# --------------------------------------------------------------------------------------------


def _require(ds: xr.Dataset, names: tuple[str, ...], source: str) -> None:
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(f"{source} dataset lacks variable(s) {missing}; present: {sorted(ds.data_vars)}")


def _uncertainty(u10: float, v10: float, u_nb: np.ndarray, v_nb: np.ndarray) -> tuple[float, float]:
    speed = math.hypot(u10, v10)
    speed_sd = max(float(np.std(np.hypot(u_nb, v_nb))), sron_wind_speed_error_m_s(speed))
    direction_sd = direction_sd_from_speed_sd_rad(speed, speed_sd)
    moving = np.hypot(u_nb, v_nb) > 0.5
    if speed > 0.5 and np.any(moving):
        delta = np.angle(np.exp(1j * (np.arctan2(v_nb[moving], u_nb[moving]) - math.atan2(v10, u10))))
        direction_sd = max(direction_sd, float(np.sqrt(np.mean(delta**2))))
    return speed_sd, direction_sd


def _pasquill(u10: float, v10: float, time: np.datetime64, lon: float, lat: float,
              cloud: float) -> tuple[float, str, str]:
    elevation = float(stability.solar_elevation_deg(time, lon, lat))
    pg_class = stability.pasquill_gifford_class(math.hypot(u10, v10), elevation, cloud)
    method = f"Pasquill table (solar elevation {elevation:.1f} deg, cloud {cloud:.2f})"
    return stability.class_to_index(pg_class), pg_class, method


def _golder(length_m: float, z0: float) -> tuple[float, str, str]:
    index = stability.golder_index(length_m, z0)
    return index, stability.index_to_class(index), f"Golder 1/L (L = {length_m:.1f} m, z0 = {z0:.3f} m)"


def _pressure_level_mean(
    era5: xr.Dataset, stencil: _Stencil, p_surface_pa: float, pblh_m: float
) -> tuple[float, float] | None:
    if not {"u", "v", "pressure_level"} <= set(era5.variables):
        return None
    p_top_pa = p_surface_pa * math.exp(-pblh_m / SCALE_HEIGHT_M)
    levels_pa = np.asarray(era5["pressure_level"].values, np.float64) * 100.0
    profiles = [era5[k].transpose("time", "pressure_level", ...) for k in ("u", "v")]
    u, v = (_evaluate(_time_first(da, "latitude", "longitude"), stencil) for da in profiles)
    inside = (levels_pa <= p_surface_pa) & (levels_pa >= p_top_pa)
    if not np.any(inside):
        return None
    return float(np.mean(u[inside])), float(np.mean(v[inside]))


def wind_at_era5(
    era5: xr.Dataset, lon: float, lat: float, time: Any, sshf_accumulation_s: float = ERA5_SSHF_ACCUMULATION_S
) -> OverpassWind:
    """Met prior at (``lon``, ``lat``) degrees and ``time`` (UTC) from an ERA5 carrier.

    ``era5`` has dims ``time, latitude (increasing), longitude`` and at least ``u10, v10`` (m s-1);
    ``u100, v100`` (m s-1), ``blh`` (m), ``sp`` (Pa), ``t2m`` (K), ``tcc`` (0-1), ``fsr`` (m) and
    ``sshf`` (J m-2 accumulated over ``sshf_accumulation_s``, positive downwards) are used when
    present; pressure-level ``u, v`` on ``pressure_level`` (hPa) give the boundary-layer mean.
    Missing optional fields fall back to documented defaults (PBLH 1000 m, 1013.25 hPa, cloud 0.5),
    listed in ``notes``. Raises ``ValueError`` naming the missing variable or the out-of-range
    coordinate (e.g. a time outside the file's range).
    """
    _require(era5, ("u10", "v10", "time", "latitude", "longitude"), "ERA5")
    if era5["latitude"].size > 1 and float(era5["latitude"][0]) > float(era5["latitude"][-1]):
        era5 = era5.sortby("latitude")
    t = _to_datetime64(time)
    stencil = _era5_stencil(era5, lon, lat, t)

    def field(name: str) -> np.ndarray:
        return _time_first(era5[name], "latitude", "longitude")

    def at(name: str, default: float, notes: list[str]) -> float:
        if name in era5.variables:
            return float(_evaluate(field(name), stencil))
        notes.append(f"{name} absent: {default} used")
        return default

    notes: list[str] = []
    u10, v10 = float(_evaluate(field("u10"), stencil)), float(_evaluate(field("v10"), stencil))
    pblh = at("blh", DEFAULT_PBLH_M, notes)
    p_s = at("sp", STANDARD_PRESSURE_PA, notes)
    speed_sd, direction_sd = _uncertainty(u10, v10, _neighbours(field("u10"), stencil),
                                          _neighbours(field("v10"), stencil))
    pbl = _pressure_level_mean(era5, stencil, p_s, pblh)
    if pbl is None and {"u100", "v100"} <= set(era5.variables):
        pbl = float(_evaluate(field("u100"), stencil)), float(_evaluate(field("v100"), stencil))
    u_pbl, v_pbl = pbl if pbl is not None else (u10, v10)
    if {"sshf", "fsr", "t2m"} <= set(era5.variables):
        z0 = at("fsr", 0.1, notes)
        length = stability.obukhov_length_m(at("sshf", 0.0, notes), sshf_accumulation_s, u10, v10,
                                            at("t2m", 288.15, notes), p_s, z0)
        index, pg_class, method = _golder(length, z0)
    else:
        index, pg_class, method = _pasquill(u10, v10, t, lon, lat, at("tcc", 0.5, notes))
    return OverpassWind(
        time=_to_datetime(t), u_m_s=u10, v_m_s=v10, speed_sd_m_s=speed_sd, direction_sd_rad=direction_sd,
        stability_index=index, pblh_m=pblh, surface_pressure_pa=p_s, source="ERA5",
        u10_m_s=u10, v10_m_s=v10, u_pbl_m_s=u_pbl, v_pbl_m_s=v_pbl, stability_class=pg_class,
        stability_method=method, notes="; ".join(notes),
    )


def wind_at_wrf(
    wrf: xr.Dataset, lon: float, lat: float, time: Any, cloud_fraction: float = 0.5
) -> OverpassWind:
    """Met prior at (``lon``, ``lat``) degrees and ``time`` (UTC) from the WRF carrier of ``read_wrf``.

    ``wrf`` has dims ``time, south_north, west_east`` with 2-D coords ``lat, lon`` (degrees) and
    ``u10, v10`` (m s-1, earth-relative), ``pblh`` (m), ``psfc`` (Pa), optionally ``u_bl, v_bl``
    (lowest model level, m s-1) and ``hfx`` (upward sensible heat flux, W m-2), ``t2`` (K), ``znt``
    (roughness, m). On the curvilinear grid the point is located by inverting the bilinear map of
    the enclosing cell. Without a heat flux the Pasquill table is used with ``cloud_fraction``
    (WRF output carries no total cloud cover).
    """
    _require(wrf, ("u10", "v10", "lat", "lon", "time"), "WRF")
    t = _to_datetime64(time)
    stencil = _wrf_stencil(wrf, lon, lat, t)

    def field(name: str) -> np.ndarray:
        return _time_first(wrf[name], "south_north", "west_east")

    def at(name: str, default: float, notes: list[str]) -> float:
        if name in wrf.variables:
            return float(_evaluate(field(name), stencil))
        notes.append(f"{name} absent: {default} used")
        return default

    notes: list[str] = []
    u10, v10 = float(_evaluate(field("u10"), stencil)), float(_evaluate(field("v10"), stencil))
    pblh = at("pblh", DEFAULT_PBLH_M, notes)
    p_s = at("psfc", STANDARD_PRESSURE_PA, notes)
    speed_sd, direction_sd = _uncertainty(u10, v10, _neighbours(field("u10"), stencil),
                                          _neighbours(field("v10"), stencil))
    if {"u_bl", "v_bl"} <= set(wrf.variables):
        u_pbl, v_pbl = float(_evaluate(field("u_bl"), stencil)), float(_evaluate(field("v_bl"), stencil))
    else:
        u_pbl, v_pbl = u10, v10
    if {"hfx", "t2", "znt"} <= set(wrf.variables):
        z0 = at("znt", 0.1, notes)
        length = stability.obukhov_length_from_flux_m(at("hfx", 0.0, notes), math.hypot(u10, v10),
                                                      at("t2", 288.15, notes), p_s, z0)
        index, pg_class, method = _golder(length, z0)
    else:
        index, pg_class, method = _pasquill(u10, v10, t, lon, lat, cloud_fraction)
    return OverpassWind(
        time=_to_datetime(t), u_m_s=u10, v_m_s=v10, speed_sd_m_s=speed_sd, direction_sd_rad=direction_sd,
        stability_index=index, pblh_m=pblh, surface_pressure_pa=p_s, source="WRF",
        u10_m_s=u10, v10_m_s=v10, u_pbl_m_s=u_pbl, v_pbl_m_s=v_pbl, stability_class=pg_class,
        stability_method=method, notes="; ".join(notes),
    )


def wrf_covers(wrf: xr.Dataset, lon: float, lat: float, time: Any) -> bool:
    """Whether the WRF carrier holds the point (inside the grid) and the time (inside its range)."""
    try:
        _wrf_stencil(wrf, lon, lat, _to_datetime64(time))
    except ValueError:
        return False
    return True


def choose_met(
    lon: float, lat: float, time: Any, era5: xr.Dataset | None = None, wrf: xr.Dataset | None = None
) -> OverpassWind:
    """The met prior from WRF when it covers the point and time, else from ERA5.

    Raises ``ValueError`` when neither is given, or when WRF does not cover the point and no ERA5 is
    given (the message says why WRF was rejected).
    """
    if wrf is not None and wrf_covers(wrf, lon, lat, time):
        return wind_at_wrf(wrf, lon, lat, time)
    if era5 is not None:
        return wind_at_era5(era5, lon, lat, time)
    if wrf is None:
        raise ValueError("choose_met needs an ERA5 or a WRF dataset; neither was given")
    wind_at_wrf(wrf, lon, lat, time)  # raises with the reason WRF does not cover the point
    raise AssertionError("unreachable")
