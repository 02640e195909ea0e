"""Physical simulation of the bundled sample scenes: analytic fields -> carrier Datasets.

Each function turns one row of the truth table (``truth_table.csv``) and one overpass
(``truth_overpasses.csv``) into an ``xarray.Dataset`` laid out as the matching reader output in
docs/carriers.md, ready for the product writers in ``samples.formats``. The physics is documented in
``samples/README.md``; in short:

- Meteorology is an analytic smooth field per event (uniform flow + linear gradient + diurnal rotation),
  sampled on the ERA5 0.25 degree grid.
- The plume is the vertically integrated Gaussian plume of ``science.forward.plume`` (Briggs 1973 dispersion),
  driven by the *true* wind of each overpass (ERA5 wind at the source, perturbed within the met
  uncertainty).
- EMIT radiance is a smooth solar/atmospheric spectrum times surface reflectance mixtures times the
  Beer-Lambert CH4 term ``exp(k * alpha)`` (Thompson et al. 2015, AMT 8, 4383; Foote et al. 2020,
  IEEE TGRS 58, 6480), plus noise.
- TROPOMI pixels average a ~100 m fine-grid plume inside each pixel polygon and apply the column
  averaging kernel operator of Hasekamp et al. (2019, ATBD SRON-S5P-LEV2-RP-001, eq. 46).
- GHGSat and OCO-2 convert the column mass to mole fractions with the surface pressure
  (Jacob et al. 2016, ACP 16, 14371, eq. 1).

No dagster, no file writing here: ``samples.generate`` writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.path import Path as PolygonPath
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.science.forward.absorption import band_unit_absorption
from attribution_assets.science.forward.plume import column_enhancement_kg_m2, instrument_sigma_floor_m
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.units import (
    G_M_S2,
    KG_M2_PER_PPM_M_CH4,
    M_AIR_KG_MOL,
    M_CH4_KG_MOL,
    kg_h_to_kg_s,
    kg_m2_per_ppb,
    kg_m2_per_ppm,
)

_plume_jit = jax.jit(column_enhancement_kg_m2)
SAMPLES_DIR = Path(__file__).resolve().parent
TRUTH_TABLE_CSV = SAMPLES_DIR / "truth_table.csv"
TRUTH_OVERPASSES_CSV = SAMPLES_DIR / "truth_overpasses.csv"

SCALE_HEIGHT_M = 8400.0
"""Pressure scale height used for the barometric surface pressure and the boundary-layer top, m."""
STANDARD_PRESSURE_PA = 101325.0
PLUME_CHUNK = 131_072
"""Points per compiled plume call (fixed, so the plume compiles once per process)."""
BRIGGS_SIGMA_Y_A = (0.22, 0.16, 0.11, 0.08, 0.06, 0.04, 0.04)
"""Briggs (1973) open-country sigma_y slope per Pasquill-Gifford class A..F (F repeated for s = 5)."""


# --------------------------------------------------------------------------------------------------
# Truth tables
# --------------------------------------------------------------------------------------------------


def parse_utc(text: str) -> datetime:
    """ISO 8601 text (``Z`` or offset) -> aware UTC datetime."""
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_z(value: datetime) -> str:
    """Aware or naive-UTC datetime -> ``YYYY-MM-DDTHH:MM:SSZ``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_datetime64(value: datetime) -> np.datetime64:
    """Aware datetime -> naive UTC ``datetime64[ns]``."""
    return np.datetime64(value.astimezone(UTC).replace(tzinfo=None), "ns")


@dataclass(frozen=True)
class Event:
    """One row of ``truth_table.csv`` (see samples/README.md for every column)."""

    index: int
    event_id: str
    gas: str
    alert_time: datetime
    alert_lon: float
    alert_lat: float
    source_lon: float
    source_lat: float
    emission_rate_kg_h: float
    surface_elevation_m: float
    wind_u0_m_s: float
    wind_v0_m_s: float
    wind_du_dlon_m_s_per_deg: float
    wind_dv_dlat_m_s_per_deg: float
    diurnal_rotation_deg: float
    t2m_sea_level_k: float
    total_cloud_cover: float
    roughness_m: float
    sensible_heat_max_w_m2: float
    era5_layout: str

    @cached_property
    def frame(self) -> LocalFrame:
        """Local metric frame centred on the alert point."""
        return LocalFrame(self.alert_lon, self.alert_lat)

    @property
    def day_start(self) -> datetime:
        """00:00 UTC of the event day."""
        return self.alert_time.replace(hour=0, minute=0, second=0, microsecond=0)

    def hours_utc(self, when: datetime) -> float:
        """Hours since 00:00 UTC of the event day."""
        return (when - self.day_start).total_seconds() / 3600.0

    @property
    def source_xy_m(self) -> np.ndarray:
        """True source position in the local frame, m."""
        x, y = self.frame.to_xy(self.source_lon, self.source_lat)
        return np.array([float(x), float(y)])


@dataclass(frozen=True)
class Overpass:
    """One row of ``truth_overpasses.csv``: the truth of one instrument overpass."""

    event_id: str
    instrument: str
    time: datetime
    stability_index: float
    wind_speed_factor: float
    wind_direction_offset_deg: float
    era5_u10_m_s: float
    era5_v10_m_s: float
    true_u_m_s: float
    true_v_m_s: float


def load_events(path: str | Path = TRUTH_TABLE_CSV) -> list[Event]:
    """Read the event truth table."""
    table = pd.read_csv(path, dtype={"event_id": str, "gas": str, "era5_layout": str})
    events = []
    for i, row in enumerate(table.to_dict("records")):
        row["alert_time"] = parse_utc(row["alert_time"])
        events.append(
            Event(index=i, **{k: (v if isinstance(v, (str, datetime)) else float(v)) for k, v in row.items()})
        )
    return events


def load_overpasses(path: str | Path = TRUTH_OVERPASSES_CSV) -> list[Overpass]:
    """Read the per-overpass truth table."""
    table = pd.read_csv(path, dtype={"event_id": str, "instrument": str, "overpass_time": str})
    out = []
    for row in table.to_dict("records"):
        time = parse_utc(row.pop("overpass_time"))
        out.append(
            Overpass(time=time, **{k: (v if isinstance(v, str) else float(v)) for k, v in row.items()})
        )
    return out


# --------------------------------------------------------------------------------------------------
# Analytic meteorology (sampled on the ERA5 grid)
# --------------------------------------------------------------------------------------------------


def solar_hour(lon_deg: np.ndarray, hours_utc: np.ndarray | float) -> np.ndarray:
    """Local mean solar time in hours (0-24) from longitude (deg) and UTC hours."""
    return np.mod(np.asarray(hours_utc, float) + np.asarray(lon_deg, float) / 15.0, 24.0)


def cos_solar_zenith(lon_deg: np.ndarray, lat_deg: np.ndarray, when: datetime) -> np.ndarray:
    """Cosine of the solar zenith angle (Cooper 1969 declination, no equation of time), 1."""
    doy = when.timetuple().tm_yday
    decl = np.deg2rad(23.44) * np.sin(2.0 * np.pi * (284 + doy) / 365.0)
    hours = when.hour + when.minute / 60.0 + when.second / 3600.0
    hour_angle = np.deg2rad(15.0 * (solar_hour(lon_deg, hours) - 12.0))
    lat = np.deg2rad(np.asarray(lat_deg, float))
    return np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)


def wind10_m_s(
    ev: Event, lon: np.ndarray, lat: np.ndarray, hours_utc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Analytic 10 m wind (u east, v north; m s-1, the direction the air moves to).

    Uniform flow ``(u0, v0)`` plus a linear gradient (du/dlon, dv/dlat per degree from the alert point),
    turned anticlockwise by ``diurnal_rotation_deg * sin(2 pi (h - 9) / 24)`` and scaled by
    ``1 + 0.15 sin(2 pi (h - 10) / 24)`` with ``h`` the local solar hour (afternoon mixing strengthens
    and turns the surface wind).
    """
    u_base = ev.wind_u0_m_s + ev.wind_du_dlon_m_s_per_deg * (np.asarray(lon, float) - ev.alert_lon)
    v_base = ev.wind_v0_m_s + ev.wind_dv_dlat_m_s_per_deg * (np.asarray(lat, float) - ev.alert_lat)
    h = solar_hour(lon, hours_utc)
    turn = np.deg2rad(ev.diurnal_rotation_deg) * np.sin(2.0 * np.pi * (h - 9.0) / 24.0)
    scale = 1.0 + 0.15 * np.sin(2.0 * np.pi * (h - 10.0) / 24.0)
    u = scale * (np.cos(turn) * u_base - np.sin(turn) * v_base)
    v = scale * (np.sin(turn) * u_base + np.cos(turn) * v_base)
    return u, v


def rotate_clockwise(u: np.ndarray, v: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Turn a wind vector clockwise by ``angle_deg`` (its bearing increases by that angle)."""
    a = np.deg2rad(angle_deg)
    return u * np.cos(a) + v * np.sin(a), -u * np.sin(a) + v * np.cos(a)


def wind100_m_s(
    ev: Event, lon: np.ndarray, lat: np.ndarray, hours_utc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """100 m wind: the 10 m wind x 1.3 (power-law shear) and veered 12 degrees clockwise (Ekman turning)."""
    u10, v10 = wind10_m_s(ev, lon, lat, hours_utc)
    u, v = rotate_clockwise(u10, v10, 12.0)
    return 1.3 * u, 1.3 * v


def elevation_m(ev: Event, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Surface elevation: the event's elevation tilted by 20 m per degree north and 15 m per degree east."""
    return (
        ev.surface_elevation_m
        + 20.0 * (np.asarray(lat, float) - ev.alert_lat)
        + 15.0 * (np.asarray(lon, float) - ev.alert_lon)
    )


def surface_pressure_pa(ev: Event, lon: np.ndarray, lat: np.ndarray, hours_utc: np.ndarray) -> np.ndarray:
    """Barometric surface pressure ``101325 exp(-z / 8400 m)`` plus a 120 Pa semidiurnal tide, Pa."""
    h = solar_hour(lon, hours_utc)
    tide = 120.0 * np.cos(4.0 * np.pi * (h - 10.0) / 24.0)
    return STANDARD_PRESSURE_PA * np.exp(-elevation_m(ev, lon, lat) / SCALE_HEIGHT_M) + tide


def boundary_layer_height_m(ev: Event, lon: np.ndarray, hours_utc: np.ndarray) -> np.ndarray:
    """Diurnal boundary-layer height: 250 m at night rising to ~2100 m in the mid-afternoon, m."""
    h = solar_hour(lon, hours_utc)
    day = np.clip(np.sin(np.pi * (h - 7.0) / 12.0), 0.0, None)
    return 250.0 + 1850.0 * day**1.3 * (ev.sensible_heat_max_w_m2 / 350.0) ** 0.5


def t2m_k(ev: Event, lon: np.ndarray, lat: np.ndarray, hours_utc: np.ndarray) -> np.ndarray:
    """2 m temperature: sea-level mean - 6.5 K/km lapse + 6 K diurnal cycle peaking at 15 h local, K."""
    h = solar_hour(lon, hours_utc)
    return (
        ev.t2m_sea_level_k - 0.0065 * elevation_m(ev, lon, lat) + 6.0 * np.sin(2.0 * np.pi * (h - 9.0) / 24.0)
    )


def sensible_heat_up_w_m2(ev: Event, solar_h: np.ndarray) -> np.ndarray:
    """Upward surface sensible heat flux: ``Hmax sin`` by day, down to -15 W m-2 at night."""
    s = np.sin(np.pi * (np.asarray(solar_h, float) - 6.5) / 13.0)
    night = np.mod(np.asarray(solar_h, float) - 6.5, 24.0) > 13.0
    return np.where(night, -15.0 * np.abs(s), ev.sensible_heat_max_w_m2 * np.clip(s, 0.0, None))


def era5_grid(ev: Event) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ERA5 0.25 degree grid over the alert +-1 degree (latitude increasing) and 24 hourly UTC steps."""
    lat0 = np.round(ev.alert_lat / 0.25) * 0.25
    lon0 = np.round(ev.alert_lon / 0.25) * 0.25
    offsets = np.arange(-4, 5) * 0.25
    times = np.array([to_datetime64(ev.day_start + timedelta(hours=h)) for h in range(24)])
    return lat0 + offsets, lon0 + offsets, times


def _var(dims: tuple[str, ...], data: np.ndarray, units: str, long_name: str) -> xr.Variable:
    return xr.Variable(dims, np.asarray(data, dtype=np.float32), {"units": units, "long_name": long_name})


def era5_dataset(ev: Event) -> xr.Dataset:
    """ERA5 single-level carrier (``time, latitude, longitude``) sampled from the analytic fields."""
    lat, lon, times = era5_grid(ev)
    hours = np.arange(24.0)[:, None, None]
    la, lo = lat[None, :, None], lon[None, None, :]
    shape = (24, lat.size, lon.size)
    u10, v10 = wind10_m_s(ev, lo, la, hours)
    u100, v100 = wind100_m_s(ev, lo, la, hours)
    solar_mid = solar_hour(lo, hours - 0.5)
    cloud = np.clip(
        ev.total_cloud_cover * (1.0 + 0.3 * np.sin(2.0 * np.pi * (solar_hour(lo, hours) - 15.0) / 24.0)),
        0.0,
        1.0,
    )
    dims = ("time", "latitude", "longitude")
    data = {
        "u10": _var(dims, u10, "m s**-1", "10 metre U wind component"),
        "v10": _var(dims, v10, "m s**-1", "10 metre V wind component"),
        "u100": _var(dims, u100, "m s**-1", "100 metre U wind component"),
        "v100": _var(dims, v100, "m s**-1", "100 metre V wind component"),
        "blh": _var(
            dims, np.broadcast_to(boundary_layer_height_m(ev, lo, hours), shape), "m", "Boundary layer height"
        ),
        "sp": _var(dims, surface_pressure_pa(ev, lo, la, hours), "Pa", "Surface pressure"),
        "t2m": _var(dims, t2m_k(ev, lo, la, hours), "K", "2 metre temperature"),
        "tcc": _var(dims, np.broadcast_to(cloud, shape), "(0 - 1)", "Total cloud cover"),
        "fsr": _var(dims, np.full(shape, ev.roughness_m), "m", "Forecast surface roughness"),
        "sshf": _var(
            dims,
            np.broadcast_to(-3600.0 * sensible_heat_up_w_m2(ev, solar_mid), shape),
            "J m**-2",
            "Surface sensible heat flux",
        ),
    }
    attrs = {
        "instrument": "ERA5",
        "product_version": "reanalysis-era5-single-levels",
        "time_coverage_start": iso_z(ev.day_start),
        "time_coverage_end": iso_z(ev.day_start + timedelta(hours=23)),
    }
    coords = {"time": times, "latitude": lat, "longitude": lon}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def era5_wind_at(era5: xr.Dataset, lon: float, lat: float, when: datetime) -> tuple[float, float]:
    """ERA5 10 m wind interpolated (bilinear in space, linear in time) at a point and time, m s-1."""
    point = (
        era5[["u10", "v10"]].astype(np.float64).interp(longitude=lon, latitude=lat, time=to_datetime64(when))
    )
    return float(point["u10"]), float(point["v10"])


def true_wind_m_s(
    u: float, v: float, speed_factor: float, direction_offset_deg: float
) -> tuple[float, float]:
    """Perturb a wind: speed x ``speed_factor``, bearing + ``direction_offset_deg`` (clockwise)."""
    ur, vr = rotate_clockwise(np.float64(u), np.float64(v), direction_offset_deg)
    return float(speed_factor * ur), float(speed_factor * vr)


def computed_overpass_winds(ev: Event, op: Overpass, era5: xr.Dataset) -> dict[str, float]:
    """ERA5 wind at the source and overpass time, and the true (perturbed) wind, rounded to mm s-1."""
    u, v = era5_wind_at(era5, ev.source_lon, ev.source_lat, op.time)
    tu, tv = true_wind_m_s(u, v, op.wind_speed_factor, op.wind_direction_offset_deg)
    return {
        "era5_u10_m_s": round(u, 3),
        "era5_v10_m_s": round(v, 3),
        "true_u_m_s": round(tu, 3),
        "true_v_m_s": round(tv, 3),
    }


# --------------------------------------------------------------------------------------------------
# Plume
# --------------------------------------------------------------------------------------------------


def plume_column_xy_kg_m2(ev: Event, op: Overpass, x_m: np.ndarray, y_m: np.ndarray) -> np.ndarray:
    """True column enhancement (kg m-2) at local-frame points ``x_m, y_m`` (m); 0 everywhere if Q = 0.

    Gaussian plume of ``science.forward.plume`` with the true wind and stability of the overpass. Points more
    than 300 m upwind, or more than 6 sigma_y (+300 m) crosswind, are skipped: there the model is below
    1e-6 of its centre-line value (sigma_y of the next more unstable class bounds the interpolated one).
    """
    x_m, y_m = np.asarray(x_m, float), np.asarray(y_m, float)
    out = np.zeros(x_m.size)
    if ev.emission_rate_kg_h <= 0.0:
        return out.reshape(x_m.shape)
    x, y = x_m.ravel(), y_m.ravel()
    src = ev.source_xy_m
    speed = np.hypot(op.true_u_m_s, op.true_v_m_s)
    ex, ey = op.true_u_m_s / speed, op.true_v_m_s / speed
    downwind = (x - src[0]) * ex + (y - src[1]) * ey
    crosswind = -(x - src[0]) * ey + (y - src[1]) * ex
    x_pos = np.maximum(downwind, 0.0)
    widest = BRIGGS_SIGMA_Y_A[int(np.floor(op.stability_index))] * x_pos / np.sqrt(1.0 + 1e-4 * x_pos)
    idx = np.flatnonzero((downwind > -300.0) & (np.abs(crosswind) < 6.0 * widest + 300.0))
    q_kg_s = kg_h_to_kg_s(ev.emission_rate_kg_h)
    for start in range(0, idx.size, PLUME_CHUNK):
        sel = idx[start : start + PLUME_CHUNK]
        pts = np.zeros((PLUME_CHUNK, 2))
        pts[: sel.size, 0], pts[: sel.size, 1] = x[sel], y[sel]
        vals = _plume_jit(
            jnp.asarray(pts), jnp.asarray(src), q_kg_s, op.true_u_m_s, op.true_v_m_s, op.stability_index
        )
        out[sel] = np.asarray(vals, dtype=np.float64)[: sel.size]
    return out.reshape(x_m.shape)


def plume_column_kg_m2(ev: Event, op: Overpass, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """True column enhancement (kg m-2) at points ``lon, lat`` (deg); see ``plume_column_xy_kg_m2``."""
    if ev.emission_rate_kg_h <= 0.0:
        return np.zeros(np.shape(lon))
    return plume_column_xy_kg_m2(ev, op, *ev.frame.to_xy(lon, lat))


# --------------------------------------------------------------------------------------------------
# Swath geometry
# --------------------------------------------------------------------------------------------------


def bearing_vector(bearing_deg: float) -> np.ndarray:
    """Unit vector (east, north) of a bearing measured clockwise from north."""
    b = np.deg2rad(bearing_deg)
    return np.array([np.sin(b), np.cos(b)])


def swath_xy(
    centre_xy: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    row_step_m: float,
    col_step_m: float,
    row_bearing_deg: float,
    col_bearing_deg: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Local (x, y) of fractional swath indices ``rows, cols`` counted from the swath centre, m."""
    a, c = bearing_vector(row_bearing_deg), bearing_vector(col_bearing_deg)
    rows, cols = np.asarray(rows, float), np.asarray(cols, float)
    x = centre_xy[0] + rows * row_step_m * a[0] + cols * col_step_m * c[0]
    y = centre_xy[1] + rows * row_step_m * a[1] + cols * col_step_m * c[1]
    return x, y


def sun_synchronous_heading_deg(lat_deg: float, inclination_deg: float) -> float:
    """Ground-track bearing of an ascending sun-synchronous orbit at latitude ``lat_deg`` (deg).

    Spherical Earth: ``sin(azimuth) = cos(i) / cos(lat)`` (Earth rotation neglected).
    """
    return float(np.rad2deg(np.arcsin(np.cos(np.deg2rad(inclination_deg)) / np.cos(np.deg2rad(lat_deg)))))


def downwind_point_xy(ev: Event, era5: xr.Dataset, when: datetime, distance_m: float) -> np.ndarray:
    """Point ``distance_m`` from the source along the ERA5 wind at the source (local frame, m)."""
    u, v = era5_wind_at(era5, ev.source_lon, ev.source_lat, when)
    return ev.source_xy_m + distance_m * np.array([u, v]) / np.hypot(u, v)


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_px: float) -> np.ndarray:
    """Spatially correlated Gaussian random field with unit standard deviation."""
    field = gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return field / field.std()


# --------------------------------------------------------------------------------------------------
# EMIT L1B radiance
# --------------------------------------------------------------------------------------------------

EMIT_N_DOWNTRACK = 100
EMIT_N_CROSSTRACK = 90
EMIT_N_BANDS = 285
EMIT_PIXEL_M = 60.0
EMIT_ORTHO_DEG = 0.000542
EMIT_DOWNTRACK_BEARING_DEG = 170.0
"""Downtrack runs 10 degrees east of due south, so the swath is rotated against the ortho grid."""
EMIT_SCENE_DURATION_S = 9.0


def emit_band_parameters() -> tuple[np.ndarray, np.ndarray]:
    """EMIT-like band centres (285 bands, 381-2493 nm) and FWHM (8.3-8.9 nm), nm."""
    wavelength = np.linspace(381.0, 2493.0, EMIT_N_BANDS)
    fwhm = 8.3 + 0.6 * (wavelength - 381.0) / (2493.0 - 381.0)
    return wavelength, fwhm


def solar_irradiance_uw_cm2_nm(wavelength_nm: np.ndarray) -> np.ndarray:
    """Top-of-atmosphere solar spectral irradiance: a 5778 K black body at 1 AU, uW cm-2 nm-1."""
    h, c, k = 6.62607015e-34, 2.99792458e8, 1.380649e-23
    lam = np.asarray(wavelength_nm, float) * 1e-9
    radiance = 2.0 * h * c**2 / lam**5 / np.expm1(h * c / (lam * k * 5778.0))  # W m-2 sr-1 m-1
    dilution = (6.957e8 / 1.496e11) ** 2
    return np.pi * radiance * dilution * 1e-9 * 100.0


def _absorption_band(wavelength_nm: np.ndarray, centre: float, width: float, depth: float) -> np.ndarray:
    return 1.0 - depth * np.exp(-0.5 * ((wavelength_nm - centre) / width) ** 2)


def two_way_transmittance(wavelength_nm: np.ndarray, mu0: float, k_ch4_band: np.ndarray) -> np.ndarray:
    """Sun-surface-sensor transmittance: Rayleigh + aerosol extinction, O2/H2O/CO2 bands, ambient CH4.

    Rayleigh optical depth ``0.0088 lambda_um^-4.05``, aerosol ``0.10 lambda_um^-1.3``; gas bands are
    Gaussian dips; ambient CH4 is ``exp(k * 12000 ppm m)`` (about 1.9 ppm over a two-way ~6 km path).
    """
    lam_um = wavelength_nm / 1000.0
    airmass = 1.0 / mu0 + 1.0
    tau = 0.0088 * lam_um**-4.05 + 0.10 * lam_um**-1.3
    trans = np.exp(-tau * airmass)
    for centre, width, depth in (
        (762.0, 3.0, 0.7),
        (720.0, 8.0, 0.2),
        (820.0, 10.0, 0.25),
        (940.0, 22.0, 0.8),
        (1135.0, 25.0, 0.85),
        (1380.0, 45.0, 0.995),
        (1880.0, 55.0, 0.995),
        (2010.0, 10.0, 0.35),
        (2060.0, 10.0, 0.3),
        (2480.0, 40.0, 0.4),
    ):
        trans *= _absorption_band(wavelength_nm, centre, width, depth)
    return trans * np.exp(k_ch4_band * 12000.0)


def endmember_reflectances(wavelength_nm: np.ndarray) -> np.ndarray:
    """Four surface reflectance spectra (soil, dry shrub, caliche/pad, dark road), shape ``(4, band)``."""
    wl = np.asarray(wavelength_nm, float)
    soil = (0.12 + 0.23 * (1.0 - np.exp(-(wl - 380.0) / 700.0))) * _absorption_band(wl, 2200.0, 20.0, 0.08)
    red_edge = 1.0 / (1.0 + np.exp(-(wl - 715.0) / 12.0))
    shrub = 0.05 + 0.03 * np.exp(-0.5 * ((wl - 550.0) / 30.0) ** 2) + 0.30 * red_edge
    shrub = shrub * _absorption_band(wl, 1450.0, 60.0, 0.4) * _absorption_band(wl, 1940.0, 70.0, 0.5)
    shrub = shrub * (1.0 - 0.45 * np.clip((wl - 1300.0) / 1200.0, 0.0, 1.0))
    caliche = (0.35 + 0.15 * (1.0 - np.exp(-(wl - 380.0) / 500.0))) * _absorption_band(wl, 2340.0, 25.0, 0.10)
    dark = 0.05 + 0.03 * (wl - 380.0) / 2113.0
    return np.stack([soil, shrub, caliche, dark])


def emit_abundances(rng: np.random.Generator, pad: np.ndarray) -> np.ndarray:
    """Endmember fractions ``(4, downtrack, crosstrack)``: softmax of correlated fields, bright pads."""
    shape = pad.shape
    logits = np.stack([smooth_field(rng, shape, s) for s in (6.0, 3.0, 4.0, 2.0)])
    logits += np.array([1.2, 0.3, -0.5, -1.5])[:, None, None]
    logits[2] += 4.0 * pad
    weights = np.exp(logits)
    brightness = 1.0 + 0.08 * smooth_field(rng, shape, 5.0)
    return weights / weights.sum(axis=0) * brightness


def emit_noise_sd(radiance: np.ndarray) -> np.ndarray:
    """Radiance noise: 0.0008 floor added in quadrature to 0.25 % shot-like noise (SNR ~300 in the SWIR)."""
    return np.sqrt(0.0008**2 + (0.0025 * radiance) ** 2)


def emit_base_radiance(wavelength_nm: np.ndarray, mu0: float, k_band: np.ndarray) -> np.ndarray:
    """Radiance of a unit-reflectance surface, ``E0 mu0 / pi * T(lambda)``, uW cm-2 sr-1 nm-1."""
    transmittance = two_way_transmittance(wavelength_nm, mu0, k_band)
    return solar_irradiance_uw_cm2_nm(wavelength_nm) * mu0 / np.pi * transmittance


def emit_radiance(
    rng: np.random.Generator,
    base: np.ndarray,
    k_band: np.ndarray,
    endmembers: np.ndarray,
    abundances: np.ndarray,
    alpha_ppm_m: np.ndarray,
    noise_scale: float = 1.0,
) -> np.ndarray:
    """``L = base * sum_e f_e rho_e * exp(k alpha) + noise`` (uW cm-2 sr-1 nm-1), shape ``(..., band)``.

    ``endmembers`` ``(e, band)`` reflectances, ``abundances`` ``(e, ...)`` fractions, ``alpha_ppm_m``
    ``(...)`` CH4 enhancement; the noise is ``noise_scale`` times :func:`emit_noise_sd` (Beer-Lambert
    forward model of Thompson et al. 2015, AMT 8, 4383; Foote et al. 2020, IEEE TGRS 58, 6480).
    """
    reflectance = np.einsum("e...,eb->...b", abundances, endmembers)
    radiance = base * reflectance * np.exp(k_band * np.asarray(alpha_ppm_m)[..., None])
    return radiance + noise_scale * emit_noise_sd(radiance) * rng.standard_normal(radiance.shape)


EMIT_DETECTION_NOISE_SCALE = 2.3
"""Radiance noise multiple that gives the matched filter the ~400 ppm·m per-pixel uncertainty of real
EMIT scenes (science reference §6) on :func:`emit_plume_cube` scenes."""


@dataclass(frozen=True)
class EmitPlumeCube:
    """A generated EMIT window radiance cube with its known plume (``emit_plume_cube``)."""

    radiance: np.ndarray  # (downtrack, crosstrack, band), uW cm-2 sr-1 nm-1
    wavelength_nm: np.ndarray
    fwhm_nm: np.ndarray
    alpha_ppm_m: np.ndarray  # (downtrack, crosstrack) true CH4 enhancement
    source_px: tuple[float, float]  # (row, col) of the source
    rate_kg_h: float
    wind_m_s: float


def emit_plume_cube(
    rng: np.random.Generator,
    shape: tuple[int, int] = (200, 200),
    rate_kg_h: float = 0.0,
    wind_m_s: float = 3.0,
    window_nm: tuple[float, float] = (2137.0, 2493.0),
    noise_scale: float = EMIT_DETECTION_NOISE_SCALE,
) -> EmitPlumeCube:
    """EMIT scene (60 m pixels, bands of ``window_nm`` only) with one Gaussian point-source plume.

    Random per scene: solar zenith (cos 0.55-0.95), surface (four endmembers mixed by correlated
    random fields, :func:`emit_abundances`, one bright pad at the source), source position (central
    half of the scene), wind direction, stability (Briggs classes B-D). ``rate_kg_h = 0`` gives a null
    scene. The plume is ``science.forward.plume.column_enhancement_kg_m2`` at the pixel centres with the pixel
    width in its crosswind spread, converted with 7.16e-7 kg m-2 per ppm·m.
    """
    wavelength, fwhm = emit_band_parameters()
    inside = (wavelength >= window_nm[0]) & (wavelength <= window_nm[1])
    wavelength, fwhm = wavelength[inside], fwhm[inside]
    k_band = band_unit_absorption(*load_ch4_unit_absorption(), wavelength, fwhm)
    base = emit_base_radiance(wavelength, float(rng.uniform(0.55, 0.95)), k_band)
    rows, cols = np.indices(shape, dtype=np.float64)
    source = (float(rng.uniform(0.25, 0.75) * shape[0]), float(rng.uniform(0.25, 0.75) * shape[1]))
    pad = ((np.abs(rows - source[0]) <= 1.0) & (np.abs(cols - source[1]) <= 1.0)).astype(float)
    abundances = emit_abundances(rng, pad)
    direction = rng.uniform(0.0, 2.0 * np.pi)
    stability = float(rng.uniform(1.0, 3.0))
    alpha = np.zeros(shape)
    if rate_kg_h > 0:
        points = np.stack([rows, cols], axis=-1) * EMIT_PIXEL_M
        omega = _plume_jit(
            jnp.asarray(points),
            jnp.asarray(np.array(source) * EMIT_PIXEL_M),
            kg_h_to_kg_s(rate_kg_h),
            wind_m_s * np.cos(direction),
            wind_m_s * np.sin(direction),
            stability,
            sigma_floor_m=instrument_sigma_floor_m(EMIT_PIXEL_M),
        )
        alpha = np.asarray(omega, dtype=np.float64) / KG_M2_PER_PPM_M_CH4
    radiance = emit_radiance(
        rng, base, k_band, endmember_reflectances(wavelength), abundances, alpha, noise_scale
    )
    return EmitPlumeCube(radiance.astype(np.float32), wavelength, fwhm, alpha, source, rate_kg_h, wind_m_s)


def emit_glt(ev: Event, centre_xy: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> dict[str, np.ndarray]:
    """Ortho grid (north-up, ``EMIT_ORTHO_DEG`` pixels) and its nearest-pixel GLT (0-based, -1 = none)."""
    d = EMIT_ORTHO_DEG
    west, east = np.floor(lon.min() / d) * d - d, np.ceil(lon.max() / d) * d + d
    south, north = np.floor(lat.min() / d) * d - d, np.ceil(lat.max() / d) * d + d
    x_lon = west + d * (np.arange(int(round((east - west) / d))) + 0.5)
    y_lat = north - d * (np.arange(int(round((north - south) / d))) + 0.5)
    glon, glat = np.meshgrid(x_lon, y_lat)
    x, y = ev.frame.to_xy(glon, glat)
    a, c = bearing_vector(EMIT_DOWNTRACK_BEARING_DEG), bearing_vector(EMIT_DOWNTRACK_BEARING_DEG - 90.0)
    dx, dy = x - centre_xy[0], y - centre_xy[1]
    row = np.rint((dx * a[0] + dy * a[1]) / EMIT_PIXEL_M + (EMIT_N_DOWNTRACK - 1) / 2.0).astype(np.int32)
    col = np.rint((dx * c[0] + dy * c[1]) / EMIT_PIXEL_M + (EMIT_N_CROSSTRACK - 1) / 2.0).astype(np.int32)
    valid = (row >= 0) & (row < EMIT_N_DOWNTRACK) & (col >= 0) & (col < EMIT_N_CROSSTRACK)
    return {
        "y_lat": y_lat,
        "x_lon": x_lon,
        "glt_row": np.where(valid, row, -1).astype(np.int32),
        "glt_col": np.where(valid, col, -1).astype(np.int32),
    }


def emit_scene(ev: Event, op: Overpass, era5: xr.Dataset, rng: np.random.Generator) -> xr.Dataset:
    """Full EMIT L1B scene carrier (radiance with the true CH4 plume injected, geolocation, GLT).

    Radiance ``L = E0 mu0 / pi * T(lambda) * sum_e f_e rho_e(lambda) * exp(k(lambda) alpha) + noise`` in
    uW/cm^2/SR/nm with ``alpha`` the true plume (ppm m) at each raw pixel centre:
    ``alpha = Omega / 7.16e-7 kg m-2 per ppm m``.
    """
    centre = downwind_point_xy(ev, era5, op.time, 1200.0)
    rows = np.arange(EMIT_N_DOWNTRACK) - (EMIT_N_DOWNTRACK - 1) / 2.0
    cols = np.arange(EMIT_N_CROSSTRACK) - (EMIT_N_CROSSTRACK - 1) / 2.0
    x, y = swath_xy(
        centre,
        rows[:, None],
        cols[None, :],
        EMIT_PIXEL_M,
        EMIT_PIXEL_M,
        EMIT_DOWNTRACK_BEARING_DEG,
        EMIT_DOWNTRACK_BEARING_DEG - 90.0,
    )
    lon, lat = ev.frame.to_lonlat(x, y)
    alpha_ppm_m = plume_column_kg_m2(ev, op, lon, lat) / KG_M2_PER_PPM_M_CH4
    wavelength, fwhm = emit_band_parameters()
    k_band = band_unit_absorption(*load_ch4_unit_absorption(), wavelength, fwhm)
    mu0 = float(cos_solar_zenith(ev.source_lon, ev.source_lat, op.time))
    sx, sy = ev.source_xy_m
    pad = ((np.abs(x - sx) < 70.0) & (np.abs(y - sy) < 60.0)).astype(float)
    radiance = emit_radiance(
        rng,
        emit_base_radiance(wavelength, mu0, k_band),
        k_band,
        endmember_reflectances(wavelength),
        emit_abundances(rng, pad),
        alpha_ppm_m,
    )
    glt = emit_glt(ev, centre, lon, lat)
    end = op.time + timedelta(seconds=EMIT_SCENE_DURATION_S)
    return xr.Dataset(
        {
            "radiance": (
                ("downtrack", "crosstrack", "band"),
                radiance.astype(np.float32),
                {"units": "uW/cm^2/SR/nm", "long_name": "at-sensor radiance"},
            ),
            "lat": (
                ("downtrack", "crosstrack"),
                lat,
                {"units": "degrees_north", "long_name": "pixel latitude"},
            ),
            "lon": (
                ("downtrack", "crosstrack"),
                lon,
                {"units": "degrees_east", "long_name": "pixel longitude"},
            ),
            "elev": (
                ("downtrack", "crosstrack"),
                elevation_m(ev, lon, lat),
                {"units": "m", "long_name": "surface elevation"},
            ),
            "glt_row": (
                ("y", "x"),
                glt["glt_row"],
                {"units": "1", "long_name": "GLT downtrack index, -1 = none"},
            ),
            "glt_col": (
                ("y", "x"),
                glt["glt_col"],
                {"units": "1", "long_name": "GLT crosstrack index, -1 = none"},
            ),
        },
        coords={
            "wavelength": ("band", wavelength, {"units": "nm", "long_name": "band centre wavelength"}),
            "fwhm": ("band", fwhm, {"units": "nm", "long_name": "band full width at half maximum"}),
            "y_lat": (
                "y",
                glt["y_lat"],
                {"units": "degrees_north", "long_name": "ortho pixel centre latitude"},
            ),
            "x_lon": (
                "x",
                glt["x_lon"],
                {"units": "degrees_east", "long_name": "ortho pixel centre longitude"},
            ),
        },
        attrs={
            "instrument": "EMIT",
            "time_coverage_start": iso_z(op.time),
            "time_coverage_end": iso_z(end),
            "flight_line": f"emit{op.time:%Y%m%dt%H%M%S}",
        },
    )


# --------------------------------------------------------------------------------------------------
# GHGSat L2
# --------------------------------------------------------------------------------------------------

GHGSAT_N = 240
GHGSAT_PIXEL_M = 25.0
GHGSAT_ROW_BEARING_DEG = 187.0
GHGSAT_BACKGROUND_PPB = 1900.0
GHGSAT_NOISE_PPB = 20.0
GHGSAT_DURATION_S = 12.0


def ghgsat_flags(rng: np.random.Generator) -> np.ndarray:
    """Quality flags: 0 good, 1 for ~0.4 % random pixels (retrieval), 2 in one small cloud disc."""
    flags = np.where(rng.random((GHGSAT_N, GHGSAT_N)) < 0.004, 1, 0).astype(np.uint8)
    cy, cx = rng.integers(20, 60), rng.integers(170, 210)
    yy, xx = np.mgrid[:GHGSAT_N, :GHGSAT_N]
    flags[(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] = 2
    return flags


def ghgsat_scene(ev: Event, op: Overpass, era5: xr.Dataset, rng: np.random.Generator) -> xr.Dataset:
    """GHGSat L2 carrier: 240 x 240 pixels of ~25 m, XCH4 (ppb) = background + plume + 20 ppb noise.

    The plume column (kg m-2) converts to ppb with the local surface pressure (``units.kg_m2_per_ppb``).
    Pixels flagged 2 (cloud) carry NaN.
    """
    centre = downwind_point_xy(ev, era5, op.time, 800.0)
    idx = np.arange(GHGSAT_N) - (GHGSAT_N - 1) / 2.0
    x, y = swath_xy(
        centre,
        idx[:, None],
        idx[None, :],
        GHGSAT_PIXEL_M,
        GHGSAT_PIXEL_M,
        GHGSAT_ROW_BEARING_DEG,
        GHGSAT_ROW_BEARING_DEG - 90.0,
    )
    lon, lat = ev.frame.to_lonlat(x, y)
    hours = ev.hours_utc(op.time)
    plume_ppb = plume_column_kg_m2(ev, op, lon, lat) / kg_m2_per_ppb(
        surface_pressure_pa(ev, lon, lat, hours), "CH4"
    )
    background = GHGSAT_BACKGROUND_PPB + 0.8e-3 * x - 0.5e-3 * y
    precision = GHGSAT_NOISE_PPB * (1.0 + 0.08 * smooth_field(rng, x.shape, 10.0))
    flags = ghgsat_flags(rng)
    noise = precision * rng.standard_normal(x.shape) + np.where(flags == 1, 60.0, 0.0) * rng.standard_normal(
        x.shape
    )
    xch4 = np.where(flags == 2, np.nan, background + plume_ppb + noise)
    dims = ("y", "x")
    return xr.Dataset(
        {
            "xch4": (dims, xch4.astype(np.float32), {"units": "ppb", "long_name": "column-averaged CH4"}),
            "xch4_precision": (
                dims,
                precision.astype(np.float32),
                {"units": "ppb", "long_name": "XCH4 precision"},
            ),
            "quality_flag": (dims, flags, {"units": "1", "long_name": "quality flag, 0 = good"}),
            "latitude": (dims, lat.astype(np.float32), {"units": "degrees_north", "long_name": "latitude"}),
            "longitude": (dims, lon.astype(np.float32), {"units": "degrees_east", "long_name": "longitude"}),
        },
        attrs={
            "instrument": "GHGSAT",
            "time_coverage_start": iso_z(op.time),
            "time_coverage_end": iso_z(op.time + timedelta(seconds=GHGSAT_DURATION_S)),
        },
    )


# --------------------------------------------------------------------------------------------------
# TROPOMI L2 CH4
# --------------------------------------------------------------------------------------------------

TROPOMI_N_SCANLINES = 40
TROPOMI_N_GROUND_PIXELS = 30
TROPOMI_ALONG_M = 5500.0
TROPOMI_ACROSS_M = 7000.0
TROPOMI_INCLINATION_DEG = 98.74
TROPOMI_SCANLINE_S = 0.84
TROPOMI_FIRST_SCANLINE = 2160
TROPOMI_FIRST_GROUND_PIXEL = 92
TROPOMI_SOURCE_OFFSET = (1.35, -0.9)
"""Source position (scanlines, ground pixels) from the subset centre: off-centre in both directions."""
TROPOMI_BACKGROUND_PPB = 1925.0
TROPOMI_NOISE_PPB = 10.0
TROPOMI_FINE_M = 100.0
TROPOMI_CLEAR_RADIUS_M = 30_000.0
"""Pixels centred this close to the source are kept cloud-free (qa_value 1.0)."""
N_LAYERS = 12
APRIORI_PPB = np.array([1890, 1890, 1889, 1888, 1886, 1883, 1878, 1870, 1852, 1805, 1690, 1330], dtype=float)
"""A-priori CH4 dry mole fraction per layer (index 0 = surface), ppb: troposphere to stratosphere."""
AVERAGING_KERNEL = np.array([0.88, 0.92, 0.95, 0.98, 1.00, 1.02, 1.03, 1.04, 1.04, 1.03, 1.00, 0.94])
"""Column averaging kernel shape per layer (index 0 = surface) for a SWIR full-physics retrieval."""
S5P_ORBIT_EPOCH = datetime(2017, 10, 13, 0, 0, tzinfo=UTC)
S5P_ORBIT_MIN = 100.9


def tropomi_orbit(when: datetime) -> int:
    """Approximate absolute S5P orbit number (launch epoch, 100.9 min period)."""
    return 1 + int((when - S5P_ORBIT_EPOCH).total_seconds() // (S5P_ORBIT_MIN * 60.0))


def tropomi_geometry(ev: Event) -> dict[str, np.ndarray]:
    """Pixel centres and corner bounds (lon, lat) of the 40 x 30 subset, flattened to ``pixel``."""
    heading = sun_synchronous_heading_deg(ev.source_lat, TROPOMI_INCLINATION_DEG)
    r_off, c_off = TROPOMI_SOURCE_OFFSET
    centre = np.array(
        swath_xy(
            ev.source_xy_m,
            np.float64(-r_off),
            np.float64(-c_off),
            TROPOMI_ALONG_M,
            TROPOMI_ACROSS_M,
            heading,
            heading + 90.0,
        )
    )
    rows = np.arange(TROPOMI_N_SCANLINES) - (TROPOMI_N_SCANLINES - 1) / 2.0
    cols = np.arange(TROPOMI_N_GROUND_PIXELS) - (TROPOMI_N_GROUND_PIXELS - 1) / 2.0
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    rr, cc = rr.ravel(), cc.ravel()
    corner_r = rr[:, None] + np.array([-0.5, -0.5, 0.5, 0.5])
    corner_c = cc[:, None] + np.array([-0.5, 0.5, 0.5, -0.5])
    args = (TROPOMI_ALONG_M, TROPOMI_ACROSS_M, heading, heading + 90.0)
    lon, lat = ev.frame.to_lonlat(*swath_xy(centre, rr, cc, *args))
    lon_b, lat_b = ev.frame.to_lonlat(*swath_xy(centre, corner_r, corner_c, *args))
    scan_idx = np.arange(TROPOMI_N_SCANLINES).repeat(TROPOMI_N_GROUND_PIXELS)
    gp_idx = np.tile(np.arange(TROPOMI_N_GROUND_PIXELS), TROPOMI_N_SCANLINES)
    return {
        "lon": lon,
        "lat": lat,
        "lon_bounds": lon_b,
        "lat_bounds": lat_b,
        "scan_idx": scan_idx,
        "gp_idx": gp_idx,
    }


def polygon_mean_column_kg_m2(
    ev: Event, op: Overpass, lon_bounds: np.ndarray, lat_bounds: np.ndarray
) -> np.ndarray:
    """Mean of the true plume (kg m-2) inside each pixel polygon, shape ``(pixel,)``.

    The plume is rasterised on a regular ``TROPOMI_FINE_M`` (100 m) grid of the local frame over the whole
    subset; each pixel averages the grid cells whose centres fall inside its corner polygon
    (``matplotlib.path``; corners projected to the local frame).
    """
    out = np.zeros(lon_bounds.shape[0])
    if ev.emission_rate_kg_h <= 0.0:
        return out
    cx, cy = ev.frame.to_xy(lon_bounds, lat_bounds)
    d = TROPOMI_FINE_M
    x_f = np.arange(np.floor(cx.min() / d) * d, cx.max() + d, d)
    y_f = np.arange(np.floor(cy.min() / d) * d, cy.max() + d, d)
    gx, gy = np.meshgrid(x_f, y_f)
    field = plume_column_xy_kg_m2(ev, op, gx, gy)
    for p in range(lon_bounds.shape[0]):
        i0, i1 = np.searchsorted(y_f, [cy[p].min(), cy[p].max()])
        j0, j1 = np.searchsorted(x_f, [cx[p].min(), cx[p].max()])
        sub = field[i0:i1, j0:j1]
        if not np.any(sub > 0.0):
            continue
        points = np.column_stack([gx[i0:i1, j0:j1].ravel(), gy[i0:i1, j0:j1].ravel()])
        inside = PolygonPath(np.column_stack([cx[p], cy[p]])).contains_points(points)
        out[p] = float(sub.ravel()[inside].mean())
    return out


def boundary_layer_weights(surface_pressure: np.ndarray, blh_m: np.ndarray) -> np.ndarray:
    """Share of a surface release in each of the 12 equal-pressure layers, ``(pixel, layer)``, 0 = surface.

    The enhancement fills the boundary layer (top at ``p_s exp(-blh / 8400 m)``) in proportion to the dry-air
    sub-columns, i.e. to the pressure thickness of each layer below the boundary-layer top.
    """
    dp = surface_pressure[:, None] / N_LAYERS
    p_top = surface_pressure[:, None] * np.exp(-blh_m[:, None] / SCALE_HEIGHT_M)
    layer_bottom = surface_pressure[:, None] - np.arange(N_LAYERS)[None, :] * dp
    overlap = np.clip((layer_bottom - p_top) / dp, 0.0, 1.0)
    return overlap / overlap.sum(axis=1, keepdims=True)


def tropomi_operator_ppb(
    column_kg_m2: np.ndarray, averaging_kernel: np.ndarray, dry_air: np.ndarray, bl_weights: np.ndarray
) -> np.ndarray:
    """Retrieved XCH4 enhancement ``1e9 sum_k A_k dx_k / sum_k n_dry,k`` (ppb), Hasekamp et al. 2019, eq. 46.

    ``dx_k = Omega / M_CH4 * w_k`` (mol m-2) distributes the column in the boundary-layer layers.
    """
    dx = (column_kg_m2 / M_CH4_KG_MOL)[:, None] * bl_weights
    return 1e9 * np.sum(averaging_kernel * dx, axis=1) / np.sum(dry_air, axis=1)


def tropomi_scene(ev: Event, op: Overpass, era5: xr.Dataset, rng: np.random.Generator) -> xr.Dataset:
    """TROPOMI L2 CH4 subset carrier (all pixels, including ``qa_value`` 0.4 ones), layer 0 = surface."""
    geo = tropomi_geometry(ev)
    n = geo["lon"].size
    times = (
        np.array(
            [
                to_datetime64(op.time + timedelta(seconds=TROPOMI_SCANLINE_S * (s - 20)))
                for s in range(TROPOMI_N_SCANLINES)
            ]
        )
        .astype("datetime64[ms]")
        .astype("datetime64[ns]")
    )
    hours = ev.hours_utc(op.time)
    ps = surface_pressure_pa(ev, geo["lon"], geo["lat"], hours)
    dry_air = np.repeat((ps / (G_M_S2 * M_AIR_KG_MOL) / N_LAYERS)[:, None], N_LAYERS, axis=1)
    albedo = 0.25 + 0.04 * smooth_field(rng, (TROPOMI_N_SCANLINES, TROPOMI_N_GROUND_PIXELS), 3.0).ravel()
    ak = 1.0 + (AVERAGING_KERNEL[None, :] - 1.0) * (1.0 - 2.0 * (albedo[:, None] - 0.25))
    omega = polygon_mean_column_kg_m2(ev, op, geo["lon_bounds"], geo["lat_bounds"])
    bl = boundary_layer_weights(ps, boundary_layer_height_m(ev, geo["lon"], hours))
    x_pix, y_pix = ev.frame.to_xy(geo["lon"], geo["lat"])
    background = (
        TROPOMI_BACKGROUND_PPB
        + 0.05e-3 * y_pix
        + 4.0 * smooth_field(rng, (TROPOMI_N_SCANLINES, TROPOMI_N_GROUND_PIXELS), 4.0).ravel()
    )
    precision = TROPOMI_NOISE_PPB * (0.9 + 0.2 * rng.random(n))
    xch4 = background + tropomi_operator_ppb(omega, ak, dry_air, bl) + precision * rng.standard_normal(n)
    cloudy = smooth_field(rng, (TROPOMI_N_SCANLINES, TROPOMI_N_GROUND_PIXELS), 2.0).ravel() > 1.3
    near_source = np.hypot(x_pix - ev.source_xy_m[0], y_pix - ev.source_xy_m[1]) < TROPOMI_CLEAR_RADIUS_M
    qa = np.where(cloudy & ~near_source, 0.4, 1.0)
    u10, v10 = wind10_m_s(ev, geo["lon"], geo["lat"], hours)
    mu0 = cos_solar_zenith(geo["lon"], geo["lat"], op.time)
    pix, lay, cor = ("pixel",), ("pixel", "layer"), ("pixel", "corner")
    data = {
        "xch4": (pix, xch4, {"units": "ppb", "long_name": "bias-corrected XCH4"}),
        "xch4_precision": (pix, precision, {"units": "ppb", "long_name": "XCH4 precision"}),
        "qa_value": (pix, qa, {"units": "1", "long_name": "quality assurance value"}),
        "latitude_bounds": (
            cor,
            geo["lat_bounds"],
            {"units": "degrees_north", "long_name": "corner latitude"},
        ),
        "longitude_bounds": (
            cor,
            geo["lon_bounds"],
            {"units": "degrees_east", "long_name": "corner longitude"},
        ),
        "column_averaging_kernel": (lay, ak, {"units": "1", "long_name": "column averaging kernel"}),
        "methane_profile_apriori": (
            lay,
            dry_air * APRIORI_PPB[None, :] * 1e-9,
            {"units": "mol m-2", "long_name": "a-priori CH4 sub-columns"},
        ),
        "dry_air_subcolumns": (lay, dry_air, {"units": "mol m-2", "long_name": "dry-air sub-columns"}),
        "surface_pressure": (pix, ps, {"units": "Pa", "long_name": "surface pressure"}),
        "pressure_interval": (pix, ps / N_LAYERS, {"units": "Pa", "long_name": "layer pressure thickness"}),
        "time": (pix, times[geo["scan_idx"]], {"long_name": "measurement time (UTC)"}),
        "surface_altitude": (
            pix,
            elevation_m(ev, geo["lon"], geo["lat"]),
            {"units": "m", "long_name": "altitude"},
        ),
        "solar_zenith_angle": (
            pix,
            np.rad2deg(np.arccos(mu0)),
            {"units": "degree", "long_name": "solar zenith"},
        ),
        "surface_albedo_SWIR": (pix, albedo, {"units": "1", "long_name": "SWIR surface albedo"}),
        "eastward_wind": (pix, u10, {"units": "m s-1", "long_name": "eastward 10 m wind"}),
        "northward_wind": (pix, v10, {"units": "m s-1", "long_name": "northward 10 m wind"}),
    }
    start = op.time - timedelta(minutes=47)
    coords = {
        "latitude": (pix, geo["lat"], {"units": "degrees_north", "long_name": "pixel centre latitude"}),
        "longitude": (pix, geo["lon"], {"units": "degrees_east", "long_name": "pixel centre longitude"}),
        "scanline": (pix, TROPOMI_FIRST_SCANLINE + geo["scan_idx"]),
        "ground_pixel": (pix, TROPOMI_FIRST_GROUND_PIXEL + geo["gp_idx"]),
    }
    attrs = {
        "instrument": "TROPOMI",
        "orbit": tropomi_orbit(op.time),
        "processor_version": "02.06.00",
        "time_coverage_start": iso_z(start),
        "time_coverage_end": iso_z(start + timedelta(minutes=S5P_ORBIT_MIN)),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------------------------------
# OCO-2 L2 Lite
# --------------------------------------------------------------------------------------------------

OCO2_INCLINATION_DEG = 98.2
OCO2_FRAME_M = 2250.0
OCO2_FOOTPRINT_M = 1290.0
OCO2_N_FOOTPRINTS = 8
OCO2_FRAME_S = 0.333
OCO2_HALF_FRAMES = 480
"""Frames either side of the track crossing: +-1080 km of orbit, about +-10 degrees of latitude."""
OCO2_LOCAL_FRAMES = 40
"""Frames either side of the crossing kept clear of clouds (+-90 km around the target)."""
OCO2_TRACK_DOWNWIND_M = 10_000.0
OCO2_BACKGROUND_PPM = 415.0
OCO2_NOISE_PPM = 0.5
OCO2_ORBIT = 58573
OCO2_SUBSAMPLES = (5, 9)
"""Quadrature points across x along each footprint for the footprint-mean plume."""
N_OCO2_LEVELS = 20


def oco2_frames(rng: np.random.Generator) -> np.ndarray:
    """Frame indices kept along the orbit: all within ``OCO2_LOCAL_FRAMES``, ~40 % elsewhere (cloud gaps)."""
    frames = np.arange(-OCO2_HALF_FRAMES, OCO2_HALF_FRAMES + 1)
    clear = gaussian_filter1d(rng.standard_normal(frames.size), 6.0)
    keep = (np.abs(frames) <= OCO2_LOCAL_FRAMES) | (clear > np.quantile(clear, 0.6))
    return frames[keep]


def footprint_mean_column_kg_m2(
    ev: Event, op: Overpass, centre: np.ndarray, frames: np.ndarray, footprints: np.ndarray, heading: float
) -> np.ndarray:
    """Mean true plume (kg m-2) over each footprint parallelogram (regular sub-sample quadrature)."""
    n_c, n_a = OCO2_SUBSAMPLES
    sub_c = (np.arange(n_c) + 0.5) / n_c - 0.5
    sub_a = (np.arange(n_a) + 0.5) / n_a - 0.5
    rows = frames[:, None, None] + sub_a[None, None, :]
    cols = (footprints - 4.5)[:, None, None] + sub_c[None, :, None]
    x, y = swath_xy(centre, rows, cols, OCO2_FRAME_M, OCO2_FOOTPRINT_M, heading, heading + 90.0)
    lon, lat = ev.frame.to_lonlat(x, y)
    return plume_column_kg_m2(ev, op, lon, lat).mean(axis=(1, 2))


def oco2_level_fields(psurf_hpa: np.ndarray) -> dict[str, tuple[tuple[str, str], np.ndarray, dict[str, str]]]:
    """Per-level a-priori profile, pressure levels, pressure weights and averaging kernel (20 levels)."""
    sigma = np.linspace(0.0, 1.0, N_OCO2_LEVELS)
    levels = np.maximum(psurf_hpa[:, None] * sigma[None, :], 0.1)
    weight = np.gradient(sigma) / np.gradient(sigma).sum()
    apriori = 414.0 - 6.0 * np.clip(0.25 - sigma, 0.0, None) / 0.25
    kernel = 0.55 + 0.45 * np.sin(np.pi * np.clip(sigma, 0.05, 1.0) * 0.5) ** 0.6
    dims = ("sounding", "level")
    n = psurf_hpa.size
    return {
        "pressure_levels": (dims, levels, {"units": "hPa", "long_name": "pressure levels"}),
        "pressure_weight": (
            dims,
            np.broadcast_to(weight, (n, N_OCO2_LEVELS)),
            {"units": "1", "long_name": "pressure weight"},
        ),
        "co2_profile_apriori": (
            dims,
            np.broadcast_to(apriori, (n, N_OCO2_LEVELS)),
            {"units": "ppm", "long_name": "a-priori CO2 profile"},
        ),
        "xco2_averaging_kernel": (
            dims,
            np.broadcast_to(kernel, (n, N_OCO2_LEVELS)),
            {"units": "1", "long_name": "xco2 averaging kernel"},
        ),
    }


def oco2_sounding_ids(times: np.ndarray, footprints: np.ndarray) -> np.ndarray:
    """``YYYYMMDDhhmmss`` x 100 + tenths of a second x 10 + footprint, int64."""
    stamps = pd.DatetimeIndex(times)
    parts = [
        np.asarray(getattr(stamps, name), dtype=np.int64)
        for name in ("year", "month", "day", "hour", "minute", "second")
    ]
    whole = np.zeros(len(stamps), dtype=np.int64)
    for part, width in zip(parts, (10**10, 10**8, 10**6, 10**4, 100, 1), strict=True):
        whole += part * width
    tenths = np.asarray(stamps.microsecond, dtype=np.int64) // 100_000
    return whole * 100 + tenths * 10 + footprints.astype(np.int64)


def oco2_scene(ev: Event, op: Overpass, era5: xr.Dataset, rng: np.random.Generator) -> xr.Dataset:
    """OCO-2 Lite carrier: one ascending track crossing the plume ``OCO2_TRACK_DOWNWIND_M`` downwind.

    ``xco2 = 415 ppm + 0.15 ppm/deg latitude gradient + footprint-mean plume (kg m-2 -> ppm with the
    surface pressure) + noise``; ~8 % of soundings are flagged (``xco2_quality_flag`` 1) and get extra
    scatter.
    """
    heading = sun_synchronous_heading_deg(ev.source_lat, OCO2_INCLINATION_DEG)
    centre = downwind_point_xy(ev, era5, op.time, OCO2_TRACK_DOWNWIND_M)
    frames = oco2_frames(rng)
    frames = np.repeat(frames, OCO2_N_FOOTPRINTS)
    footprints = np.tile(np.arange(1, OCO2_N_FOOTPRINTS + 1), frames.size // OCO2_N_FOOTPRINTS)
    keep = rng.random(frames.size) > 0.05
    frames, footprints = frames[keep], footprints[keep]
    args = (OCO2_FRAME_M, OCO2_FOOTPRINT_M, heading, heading + 90.0)
    lon, lat = ev.frame.to_lonlat(*swath_xy(centre, frames, footprints - 4.5, *args))
    v_lon, v_lat = ev.frame.to_lonlat(
        *swath_xy(
            centre,
            frames[:, None] + np.array([-0.5, -0.5, 0.5, 0.5]),
            (footprints - 4.5)[:, None] + np.array([-0.5, 0.5, 0.5, -0.5]),
            *args,
        )
    )
    times = to_datetime64(op.time) + np.rint(frames * OCO2_FRAME_S * 1000).astype("timedelta64[ms]")
    hours = ev.hours_utc(op.time) + frames * OCO2_FRAME_S / 3600.0
    sp = surface_pressure_pa(ev, lon, lat, hours)
    plume_ppm = footprint_mean_column_kg_m2(ev, op, centre, frames, footprints, heading) / kg_m2_per_ppm(
        sp, "CO2"
    )
    uncertainty = OCO2_NOISE_PPM * (0.85 + 0.3 * rng.random(frames.size))
    flag = (rng.random(frames.size) < 0.08).astype(np.int8)
    noise = uncertainty * rng.standard_normal(frames.size) + flag * 1.5 * rng.standard_normal(frames.size)
    xco2 = OCO2_BACKGROUND_PPM + 0.15 * (lat - ev.source_lat) + plume_ppm + noise
    psurf = sp / 100.0 + 0.7 * rng.standard_normal(frames.size)
    u10, v10 = wind10_m_s(ev, lon, lat, hours)
    s, sv = ("sounding",), ("sounding", "vertex")
    data = {
        "xco2": (s, xco2, {"units": "ppm", "long_name": "XCO2 (bias corrected)"}),
        "xco2_uncertainty": (s, uncertainty, {"units": "ppm", "long_name": "XCO2 1-sigma uncertainty"}),
        "xco2_quality_flag": (s, flag, {"units": "1", "long_name": "quality flag, 0 = good"}),
        "xco2_apriori": (
            s,
            np.full(frames.size, OCO2_BACKGROUND_PPM - 1.0),
            {"units": "ppm", "long_name": "a priori"},
        ),
        "vertex_latitude": (sv, v_lat, {"units": "degrees_north", "long_name": "footprint vertex latitude"}),
        "vertex_longitude": (sv, v_lon, {"units": "degrees_east", "long_name": "footprint vertex longitude"}),
        "time": (s, times.astype("datetime64[ns]"), {"long_name": "sounding time (UTC)"}),
        "psurf": (s, psurf, {"units": "hPa", "long_name": "retrieved surface pressure"}),
        "psurf_apriori": (s, sp / 100.0, {"units": "hPa", "long_name": "a-priori surface pressure"}),
        "windspeed_u_met": (s, u10, {"units": "m s-1", "long_name": "10 m eastward wind"}),
        "windspeed_v_met": (s, v10, {"units": "m s-1", "long_name": "10 m northward wind"}),
        "orbit": (s, np.full(frames.size, OCO2_ORBIT, dtype=np.int32), {"units": "1", "long_name": "orbit"}),
        "footprint": (s, footprints.astype(np.int8), {"units": "1", "long_name": "footprint (1-8)"}),
        "operation_mode": (s, np.zeros(frames.size, dtype=np.int8), {"units": "1", "long_name": "0 = nadir"}),
        "sounding_id": (s, oco2_sounding_ids(times, footprints), {"units": "1", "long_name": "sounding id"}),
        "altitude": (s, elevation_m(ev, lon, lat), {"units": "m", "long_name": "surface altitude"}),
        "land_fraction": (s, np.full(frames.size, 100.0), {"units": "%", "long_name": "land fraction"}),
        **oco2_level_fields(psurf),
    }
    coords = {
        "latitude": (s, lat, {"units": "degrees_north", "long_name": "sounding latitude"}),
        "longitude": (s, lon, {"units": "degrees_east", "long_name": "sounding longitude"}),
    }
    attrs = {
        "instrument": "OCO2",
        "time_coverage_start": str(times.min().astype("datetime64[s]")) + "Z",
        "time_coverage_end": str(times.max().astype("datetime64[s]")) + "Z",
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
