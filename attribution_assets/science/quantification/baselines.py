"""IME and CSF quantification baselines from one image, reported next to the Bayesian posterior.

The plume is masked on the significance map of :func:`plume_mask.plume_mask` (component containing,
or nearest to, the alert point); the column enhancement is converted to kg m-2 with the instrument's
unit (EMIT ppm·m: 7.16e-7 kg m-2; GHGSat ppb: surface pressure, Jacob et al. 2016) and passed to the
Monte-Carlo IME and CSF estimators of :mod:`ime` (Varon et al. 2018, AMT 11, 5673) with the
instrument's effective-wind calibration and the 10 m wind of the overpass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr
from shapely.geometry.base import BaseGeometry

from attribution_assets.science.detection.plume_mask import plume_mask
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.quantification.ime import QuantificationResult, quantify_csf, quantify_ime
from attribution_assets.science.units import KG_M2_PER_PPM_M_CH4, METRES_PER_DEG_LAT, kg_m2_per_ppb

CSF_DISTANCES_M = np.arange(300.0, 2100.0, 300.0)
CSF_HALF_WIDTH_M = 1500.0


@dataclass(frozen=True)
class Baseline:
    """One single-image estimate (``result.instrument``, ``result.method``), the mask size and outline."""

    result: QuantificationResult
    plume_pixels: int
    polygon: BaseGeometry | None


def _u10(wind: OverpassWind) -> float:
    u10 = wind.u10_m_s if math.isfinite(wind.u10_m_s) else wind.u_m_s
    v10 = wind.v10_m_s if math.isfinite(wind.v10_m_s) else wind.v_m_s
    return math.hypot(u10, v10)


def emit_baselines(enh: xr.Dataset, wind: OverpassWind, frame: LocalFrame, seed: int = 0) -> list[Baseline]:
    """IME and CSF from an EMIT matched-filter map (``ch4_enhancement_ppm_m`` on ``lat(y)``, ``lon(x)``)."""
    values = enh["ch4_enhancement_ppm_m"].transpose("y", "x").values.astype(float)
    sd = enh["ch4_enhancement_sd_ppm_m"].transpose("y", "x").values.astype(float)
    lon, lat = enh["lon"].values, enh["lat"].values
    found = plume_mask(values, sd, point=(frame.lon0_deg, frame.lat0_deg), lon=lon, lat=lat)
    if not found.detected:
        return []
    dy_m = abs(float(np.median(np.diff(lat)))) * METRES_PER_DEG_LAT
    dx_m = abs(float(np.median(np.diff(lon)))) * METRES_PER_DEG_LAT * math.cos(math.radians(frame.lat0_deg))
    omega, omega_sd = np.nan_to_num(values) * KG_M2_PER_PPM_M_CH4, np.nan_to_num(sd) * KG_M2_PER_PPM_M_CH4
    u10, u10_sd = _u10(wind), wind.speed_sd_m_s
    ime = quantify_ime(omega, omega_sd, found.mask, dx_m * dy_m, u10, "EMIT", u10_sd_m_s=u10_sd, seed=seed)
    # CSF samples a regular local grid with increasing axes: the ortho grid is regular in lon/lat.
    x_m, _ = frame.to_xy(lon, np.full_like(lon, frame.lat0_deg))
    _, y_m = frame.to_xy(np.full_like(lat, frame.lon0_deg), lat)
    rows, cols = np.argsort(y_m), np.argsort(x_m)
    plume = (omega * found.mask)[np.ix_(rows, cols)]
    csf = quantify_csf(
        plume,
        omega_sd[np.ix_(rows, cols)],
        x_m[cols],
        y_m[rows],
        (0.0, 0.0),
        wind.direction_to_rad,
        u10,
        "EMIT",
        CSF_DISTANCES_M,
        CSF_HALF_WIDTH_M,
        u10_sd_m_s=u10_sd,
        seed=seed,
    )
    return [Baseline(ime, found.area_px, found.polygon), Baseline(csf, found.area_px, found.polygon)]


def ghgsat_baselines(ds: xr.Dataset, wind: OverpassWind, frame: LocalFrame, seed: int = 0) -> list[Baseline]:
    """IME from a GHGSat L2 scene (``xch4`` ppb with background, ``xch4_precision``, 2-D lat/lon)."""
    xch4 = ds["xch4"].values.astype(float)
    good = (ds["quality_flag"].values == 0) & np.isfinite(xch4)
    if good.sum() < 10:
        return []
    enhancement = np.where(good, xch4 - np.median(xch4[good]), np.nan)
    precision = ds["xch4_precision"].values.astype(float)
    lat, lon = ds["latitude"].values, ds["longitude"].values
    x_m, y_m = frame.to_xy(lon, lat)
    row, col = np.unravel_index(np.argmin(np.hypot(x_m, y_m)), x_m.shape)
    found = plume_mask(enhancement, precision, point=(int(row), int(col)))
    if not found.detected:
        return []
    pixel_area = float(np.median(np.abs(np.diff(y_m, axis=0))) * np.median(np.abs(np.diff(x_m, axis=1))))
    per_ppb = float(kg_m2_per_ppb(wind.surface_pressure_pa, "CH4"))
    ime = quantify_ime(
        np.nan_to_num(enhancement) * per_ppb,
        precision * per_ppb,
        found.mask,
        pixel_area,
        _u10(wind),
        "GHGSAT",
        u10_sd_m_s=wind.speed_sd_m_s,
        seed=seed,
    )
    return [Baseline(ime, found.area_px, None)]
