"""Meteorology at the source for each overpass: the wind prior of the inversion.

:func:`wind_at` turns a reanalysis or model carrier (docs/carriers.md; ERA5 from
:func:`attribution_assets.readers.era5.read_era5`, WRF from :func:`attribution_assets.readers.wrf.read_wrf`)
into one :class:`OverpassWind` per overpass. One extractor serves every source: a :class:`MetCarrier`
says only how a source names and lays out its fields (:data:`ERA5`, :data:`WRF`).

- ``u_m_s, v_m_s``: the **10 m wind** at the source, bilinear in space and linear in time. This is
  the plume model's transport wind: the IME/CSF effective-wind calibrations (Varon et al. 2018,
  AMT 11, 5673; Varon et al. 2021, AMT 14, 2771) and the Pasquill classes are all defined on U10,
  so the Gaussian plume is driven by the same wind. On a rectilinear grid (1-D ``lon``/``lat``,
  ERA5) the weights are bilinear in the coordinates; on a curvilinear grid (2-D ``lon``/``lat``,
  WRF) the point is located by inverting the bilinear map of the enclosing cell.
- ``u_pbl_m_s, v_pbl_m_s``: a boundary-layer wind for reference: the mean of the pressure-level
  winds below the boundary-layer top when the file has them, else the 100 m wind (ERA5) or the
  lowest model level (WRF).
- ``speed_sd_m_s``: the larger of the spread (standard deviation) of the 10 m wind speed over the
  3 x 3 neighbouring grid points at t - 1 h, t, t + 1 h and the SRON wind error model (50 % of the
  speed for U10 <= 3 m s-1, else 1.5 m s-1, the error model SRON applies to reanalysis winds in its
  satellite plume quantification).
  Below ``CALM_SPEED_M_S`` (a calm, e.g. a zero wind in the file) the speed uncertainty is at least
  ``CALM_SPEED_SD_M_S`` and the calm is recorded in ``notes``: the wind is then too weak to know, not
  known to be zero.
- Non-finite (fill, NaN) 10 m wind, boundary-layer height or surface pressure at the source is a
  broken file: :func:`wind_at` raises ``ValueError`` naming the file (``source_file``) and the variable.
- ``direction_sd_rad``: the largest of ``atan(speed_sd / speed)``, the directional spread of the same
  neighbours, and a 10 degree floor.
- ``stability_index``: Golder (1972) from the Obukhov length when the surface sensible heat flux
  and roughness are present, else the Pasquill (1961) table from the solar elevation and cloud cover
  (:mod:`attribution_assets.science.met.stability`).

Which source serves an overpass is :mod:`attribution_assets.science.met.source`.
Pure computation on in-memory datasets: no file I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import xarray as xr

from attribution_assets.science.met import stability
from attribution_assets.science.units import PRESSURE_SCALE_HEIGHT_M, SECONDS_PER_HOUR, STANDARD_PRESSURE_PA
from attribution_assets.times import as_utc, to_datetime64

DIRECTION_SD_FLOOR_RAD = math.radians(10.0)
DEFAULT_PBLH_M = 1000.0
DEFAULT_CLOUD_FRACTION = 0.5
SPREAD_HALF_WINDOW = timedelta(hours=1)
SINGLE_STEP_TOLERANCE = timedelta(minutes=30)
CALM_SPEED_M_S = 0.5
"""10 m wind speed (m s-1) below which the wind at the source counts as calm."""
CALM_SPEED_SD_M_S = 0.5
"""Smallest 1-sigma speed uncertainty (m s-1) of a calm wind."""


@dataclass(frozen=True)
class MetCarrier:
    """How one met source names and lays out its fields (docs/carriers.md).

    Every carrier has ``u10, v10`` (m s-1, earth-relative) and a ``time`` coordinate. ``lon``/``lat``
    name the coordinates (degrees): 1-D for a rectilinear grid, 2-D on ``dims_yx`` for a curvilinear
    one. Optional fields, used when present: ``pblh`` (m), ``surface_pressure`` (Pa),
    ``boundary_layer_wind`` (u, v; m s-1), ``t2m`` (K), ``roughness`` (m), ``heat_flux`` (upward
    W m-2, or, with ``heat_flux_accumulation_s``, ECMWF ``sshf``: J m-2 accumulated over that many
    seconds, positive downwards), ``cloud`` (total cloud cover 0-1; ``None`` when the source carries
    none) and ``pressure_level_wind`` (u, v and the level coordinate in hPa).
    """

    source: str
    lon: str
    lat: str
    dims_yx: tuple[str, str]
    pblh: str
    surface_pressure: str
    boundary_layer_wind: tuple[str, str]
    t2m: str
    roughness: str
    heat_flux: str
    heat_flux_accumulation_s: float | None = None
    cloud: str | None = None
    pressure_level_wind: tuple[str, str, str] | None = None


ERA5 = MetCarrier(
    source="ERA5",
    lon="longitude",
    lat="latitude",
    dims_yx=("latitude", "longitude"),
    pblh="blh",
    surface_pressure="sp",
    boundary_layer_wind=("u100", "v100"),
    t2m="t2m",
    roughness="fsr",
    heat_flux="sshf",
    heat_flux_accumulation_s=SECONDS_PER_HOUR,
    cloud="tcc",
    pressure_level_wind=("u", "v", "pressure_level"),
)
"""ERA5 single (and pressure) levels, hourly: ``time, latitude, longitude`` (``read_era5``)."""

WRF = MetCarrier(
    source="WRF",
    lon="lon",
    lat="lat",
    dims_yx=("south_north", "west_east"),
    pblh="pblh",
    surface_pressure="psfc",
    boundary_layer_wind=("u_bl", "v_bl"),
    t2m="t2",
    roughness="znt",
    heat_flux="hfx",
)
"""WRF output: ``time, south_north, west_east`` with 2-D ``lat, lon`` (``read_wrf``); no cloud cover."""


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


def _rectilinear_terms(
    lons: np.ndarray, lats: np.ndarray, lon: float, lat: float, source: str
) -> tuple[tuple[tuple[int, int, float], ...], tuple[int, int], tuple[int, int]]:
    """Bilinear weights, nearest (row, column) and grid shape on 1-D increasing coordinates.

    The longitude is wrapped to the grid's convention ([-180, 180) or [0, 360)).
    """
    lon_q = (float(lon) + 180.0) % 360.0 - 180.0
    if lons.max() > 180.0 and lon_q < 0.0:
        lon_q += 360.0
    rows = _axis_terms(lats, float(lat), "latitude", source)
    cols = _longitude_terms(lons, lon_q, source)
    space = tuple((i, j, wi * wj) for i, wi in rows for j, wj in cols)
    lon_distance = np.abs((lons - lon_q + 180.0) % 360.0 - 180.0)
    nearest = (int(np.argmin(np.abs(lats - lat))), int(np.argmin(lon_distance)))
    return space, nearest, (lats.size, lons.size)


def _longitude_terms(lons: np.ndarray, lon: float, source: str) -> tuple[tuple[int, float], ...]:
    """Interpolation terms on an increasing longitude axis (degrees). A grid that is global, or that
    crosses the antimeridian (ERA5's columns are mapped to [-180, 180), so such a grid's last column
    is one step short of its first + 360), is interpolated across that wrap. Between two columns
    further apart than 1.5 grid steps (the part of the globe a regional grid across the antimeridian
    leaves out; float32 coordinates make steps differ slightly) the longitude is outside the file;
    elsewhere as :func:`_axis_terms`."""
    if lons.size < 2:
        return _axis_terms(lons, lon, "longitude", source)
    step = float(np.median(np.diff(lons)))
    columns = np.append(lons, lons[0] + 360.0)
    if lon < lons[0]:
        lon += 360.0
    i = int(np.searchsorted(columns, lon, side="right") - 1)
    i = min(i, columns.size - 2)
    width = columns[i + 1] - columns[i]
    if not columns[i] <= lon <= columns[i + 1] or width > 1.5 * step:
        raise ValueError(
            f"longitude {(lon + 180.0) % 360.0 - 180.0} is outside the {source} file's longitudes "
            f"(between its columns {columns[i]} and {(columns[i + 1] + 180.0) % 360.0 - 180.0})")
    w = (lon - columns[i]) / width
    return ((i, 1.0 - w), ((i + 1) % lons.size, w))


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


def _stencil(ds: xr.Dataset, carrier: MetCarrier, lon: float, lat: float, t: np.datetime64) -> _Stencil:
    """Space and time weights of the point (degrees) and time in ``ds``; raises ``ValueError`` naming
    the coordinate that is out of the file's range."""
    lons = np.asarray(ds[carrier.lon].values, np.float64)
    lats = np.asarray(ds[carrier.lat].values, np.float64)
    if lons.ndim == 2:
        space, nearest = _curvilinear_terms(lons, lats, float(lon), float(lat), carrier.source)
        shape = lons.shape
    else:
        space, nearest, shape = _rectilinear_terms(lons, lats, lon, lat, carrier.source)
    times = np.asarray(ds["time"].values, "datetime64[ns]")
    return _Stencil(
        _time_terms(times, t, carrier.source), space, nearest, shape, _spread_terms(times, t, carrier.source)
    )


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


def _prepared(ds: xr.Dataset, carrier: MetCarrier) -> xr.Dataset:
    """``ds`` checked for the fields every carrier has, with a 1-D latitude made increasing."""
    _require(ds, ("u10", "v10", "time", carrier.lat, carrier.lon), carrier.source)
    lat = ds[carrier.lat]
    if lat.ndim == 1 and lat.size > 1 and float(lat[0]) > float(lat[-1]):
        ds = ds.sortby(carrier.lat)
    return ds


@dataclass(frozen=True)
class _Sampler:
    """The fields of one carrier evaluated at one stencil."""

    ds: xr.Dataset
    carrier: MetCarrier
    stencil: _Stencil

    def has(self, *names: str) -> bool:
        return set(names) <= set(self.ds.variables)

    def field(self, name: str) -> np.ndarray:
        return _time_first(self.ds[name], *self.carrier.dims_yx)

    def at(self, name: str) -> float:
        return float(_evaluate(self.field(name), self.stencil))

    def at_or(self, name: str, default: float, notes: list[str]) -> float:
        """The field at the point, or ``default`` (noted in ``notes``) when the carrier lacks it."""
        if name in self.ds.variables:
            return self.at(name)
        notes.append(f"{name} absent: {default} used")
        return default

    def neighbours(self, name: str) -> np.ndarray:
        return _neighbours(self.field(name), self.stencil)


def _uncertainty(
    u10: float, v10: float, u_nb: np.ndarray, v_nb: np.ndarray, notes: list[str]
) -> tuple[float, float]:
    speed = math.hypot(u10, v10)
    spread = float(np.std(np.hypot(u_nb, v_nb))) if u_nb.size else 0.0
    speed_sd = max(spread, sron_wind_speed_error_m_s(speed))
    if speed < CALM_SPEED_M_S:
        speed_sd = max(speed_sd, CALM_SPEED_SD_M_S)
        notes.append(f"calm: 10 m wind {speed:.2f} m s-1, speed sd >= {CALM_SPEED_SD_M_S} m s-1")
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


def _pressure_level_mean(sample: _Sampler, p_surface_pa: float, pblh_m: float) -> tuple[float, float] | None:
    """Mean pressure-level wind (m s-1) between the surface and the boundary-layer top, if the carrier
    has pressure levels; the top is at ``p_s exp(-pblh / H)``."""
    names = sample.carrier.pressure_level_wind
    if names is None or not sample.has(*names):
        return None
    u_name, v_name, level = names
    p_top_pa = p_surface_pa * math.exp(-pblh_m / PRESSURE_SCALE_HEIGHT_M)
    levels_pa = np.asarray(sample.ds[level].values, np.float64) * 100.0
    profiles = [sample.ds[k].transpose("time", level, ...) for k in (u_name, v_name)]
    u, v = (_evaluate(_time_first(da, *sample.carrier.dims_yx), sample.stencil) for da in profiles)
    inside = (levels_pa <= p_surface_pa) & (levels_pa >= p_top_pa)
    if not np.any(inside):
        return None
    return float(np.mean(u[inside])), float(np.mean(v[inside]))


def _boundary_layer_wind(sample: _Sampler, p_surface_pa: float, pblh_m: float) -> tuple[float, float] | None:
    """Pressure-level mean, else the carrier's single boundary-layer level, else ``None``."""
    pbl = _pressure_level_mean(sample, p_surface_pa, pblh_m)
    if pbl is None and sample.has(*sample.carrier.boundary_layer_wind):
        u_name, v_name = sample.carrier.boundary_layer_wind
        pbl = sample.at(u_name), sample.at(v_name)
    return pbl


def _stability(
    sample: _Sampler, u10: float, v10: float, p_s: float, where: tuple[float, float, np.datetime64],
    cloud_fraction: float, notes: list[str],
) -> tuple[float, str, str]:
    """(index, class, method): Golder from the Obukhov length when the carrier has the heat flux,
    roughness and 2 m temperature, else the Pasquill table at ``where`` = (lon, lat, time)."""
    carrier = sample.carrier
    if sample.has(carrier.heat_flux, carrier.roughness, carrier.t2m):
        z0 = sample.at(carrier.roughness)
        heat = sample.at(carrier.heat_flux)
        if carrier.heat_flux_accumulation_s is not None:
            heat = stability.upward_heat_flux_w_m2(heat, carrier.heat_flux_accumulation_s)
        t2m = sample.at(carrier.t2m)
        length = stability.obukhov_length_from_flux_m(heat, math.hypot(u10, v10), t2m, p_s, z0)
        return _golder(length, z0)
    if carrier.cloud is not None:
        cloud_fraction = sample.at_or(carrier.cloud, cloud_fraction, notes)
    lon, lat, t = where
    return _pasquill(u10, v10, t, lon, lat, cloud_fraction)


def _require_finite(ds: xr.Dataset, values: dict[str, float], where: tuple[float, float, np.datetime64],
                    source: str) -> None:
    """Raise ``ValueError`` naming the file and the variable when a value at the source is not finite."""
    for name, value in values.items():
        if not math.isfinite(value):
            lon, lat, t = where
            raise ValueError(
                f"{ds.attrs.get('source_file', f'{source} dataset')}: variable {name!r}: expected a finite "
                f"value at ({lon:.4f}, {lat:.4f}) at {t}, found {value} (fill or missing values in the file)"
            )


def check_coverage(ds: xr.Dataset, carrier: MetCarrier, lon: float, lat: float, time: Any) -> None:
    """Check that ``ds`` holds the fields every carrier has, the point (degrees) and the time (UTC).

    Raises ``ValueError`` naming the missing variable or the out-of-range coordinate.
    """
    _stencil(_prepared(ds, carrier), carrier, lon, lat, to_datetime64(time)[()])


def wind_at(
    ds: xr.Dataset,
    carrier: MetCarrier,
    lon: float,
    lat: float,
    time: Any,
    cloud_fraction: float = DEFAULT_CLOUD_FRACTION,
) -> OverpassWind:
    """Met prior at (``lon``, ``lat``) degrees and ``time`` (UTC) from a carrier laid out as ``carrier``.

    Needs ``u10, v10`` (m s-1) on ``time`` and the carrier's grid; the optional fields of
    :class:`MetCarrier` are used when present. Missing optional fields fall back to documented
    defaults (PBLH 1000 m, 1013.25 hPa, cloud ``cloud_fraction``), listed in ``notes``; a carrier
    without cloud cover (WRF) uses ``cloud_fraction`` for the Pasquill table. Raises ``ValueError``
    naming the missing variable or the out-of-range coordinate (e.g. a time outside the file's range).
    """
    ds = _prepared(ds, carrier)
    t = to_datetime64(time)[()]
    sample = _Sampler(ds, carrier, _stencil(ds, carrier, lon, lat, t))
    notes: list[str] = []
    u10, v10 = sample.at("u10"), sample.at("v10")
    pblh = sample.at_or(carrier.pblh, DEFAULT_PBLH_M, notes)
    p_s = sample.at_or(carrier.surface_pressure, STANDARD_PRESSURE_PA, notes)
    _require_finite(ds, {"u10": u10, "v10": v10, carrier.pblh: pblh, carrier.surface_pressure: p_s},
                    (lon, lat, t), carrier.source)
    u_nb, v_nb = sample.neighbours("u10"), sample.neighbours("v10")
    finite = np.isfinite(u_nb) & np.isfinite(v_nb)
    speed_sd, direction_sd = _uncertainty(u10, v10, u_nb[finite], v_nb[finite], notes)
    u_pbl, v_pbl = _boundary_layer_wind(sample, p_s, pblh) or (u10, v10)
    index, pg_class, method = _stability(sample, u10, v10, p_s, (lon, lat, t), cloud_fraction, notes)
    return OverpassWind(
        time=as_utc(t), u_m_s=u10, v_m_s=v10, speed_sd_m_s=speed_sd, direction_sd_rad=direction_sd,
        stability_index=index, pblh_m=pblh, surface_pressure_pa=p_s, source=carrier.source,
        u10_m_s=u10, v10_m_s=v10, u_pbl_m_s=u_pbl, v_pbl_m_s=v_pbl, stability_class=pg_class,
        stability_method=method, notes="; ".join(notes),
    )
