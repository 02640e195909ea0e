"""OCO-2 along-track XCO2 peak scan: peaks of every orbit segment, their line density and emission.

Each orbit is split into segments at gaps; each segment is fitted by :mod:`.track_fit` (Gaussian +
linear background in a sliding window, after the oco2peak detector and Chevallier et al. 2020, ACP 20,
8501-8510), and every reported peak is refined and converted to an emission.

Line density (oco2peak): the Gaussian's along-track integral ``ΔX = a σ √(2π)`` in ppm·km becomes

    λ [kg m-1] = ΔX [ppm·km] · 1e-3 · (44.01 / 28.96) · (p_s / g − tcwv)

with ``p_s`` in Pa, ``g`` = 9.80665 m s-2 and ``tcwv`` the total column water vapour in kg m-2
(ppm·km · 1e-3 = mole fraction · m; times the CO2/air molar-mass ratio and the dry-air column in
kg m-2 gives kg m-1; 1 ppm·km ≈ 15.7 kg m-1 at 1013 hPa). The emission is ``Q = λ · |u⊥|`` with
``u⊥`` the wind component perpendicular to the track (m s-1), in kg s-1 and kg h-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from attribution_assets.science.detection.track_fit import (
    DEFAULT_PEAK_SCAN,
    PeakScanConfig,
    TrackFit,
    fit_track,
    refine_peak,
    select_peaks,
)
from attribution_assets.science.sphere import EARTH_RADIUS_KM, haversine_km
from attribution_assets.science.units import G_M_S2, SECONDS_PER_HOUR, STANDARD_PRESSURE_PA

M_CO2_OVER_M_AIR = 44.01 / 28.96
"""CO2/air molar-mass ratio of oco2peak (the line-density convention of its published numbers)."""
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))

PEAK_COLUMNS = [
    "orbit",
    "segment",
    "time",
    "longitude",
    "latitude",
    "distance_km",
    "amplitude_ppm",
    "amplitude_sd_ppm",
    "sigma_km",
    "significance",
    "n_soundings",
    "background_ppm",
    "background_slope_ppm_km",
    "chi2_reduced",
    "refined",
    "psurf_hpa",
    "tcwv_kg_m2",
    "line_density_ppm_km",
    "line_density_kg_m",
    "line_density_sd_kg_m",
    "track_east",
    "track_north",
    "wind_u_m_s",
    "wind_v_m_s",
    "wind_perpendicular_m_s",
    "emission_kg_s",
    "emission_kg_h",
    "emission_sd_kg_h",
]
OUTCOME_COLUMNS = ["orbit", "segment", "n_soundings", "n_good", "n_windows_valid", "n_peaks", "status"]

@dataclass(frozen=True)
class PeakScanResult:
    """Peaks (one row each, columns :data:`PEAK_COLUMNS`) and one outcome row per orbit segment."""

    peaks: pd.DataFrame
    outcomes: pd.DataFrame



def line_density_kg_m(
    delta_ppm_km: np.ndarray | float,
    surface_pressure_hpa: np.ndarray | float,
    tcwv_kg_m2: np.ndarray | float = 0.0,
) -> np.ndarray:
    """CO2 line density (kg m-1) of an along-track integral ``ΔX`` in ppm·km (oco2peak factor).

    ``λ = ΔX · 1e-3 · (44.01/28.96) · (p_s / g − tcwv)`` with ``p_s`` in hPa (converted to Pa) and
    ``tcwv`` in kg m-2.
    """
    dry_column_kg_m2 = np.asarray(surface_pressure_hpa, dtype=np.float64) * 100.0 / G_M_S2 - np.asarray(
        tcwv_kg_m2, dtype=np.float64
    )
    return np.asarray(delta_ppm_km, dtype=np.float64) * 1e-3 * M_CO2_OVER_M_AIR * dry_column_kg_m2


def perpendicular_wind_m_s(
    wind_u_m_s: np.ndarray | float,
    wind_v_m_s: np.ndarray | float,
    track_east: np.ndarray | float,
    track_north: np.ndarray | float,
) -> np.ndarray:
    """Magnitude (m s-1) of the wind component perpendicular to a track with unit direction (east, north)."""
    u, v = np.asarray(wind_u_m_s), np.asarray(wind_v_m_s)
    return np.abs(u * np.asarray(track_north) - v * np.asarray(track_east))


def emission_kg_s(
    line_density: np.ndarray | float,
    wind_u_m_s: np.ndarray | float,
    wind_v_m_s: np.ndarray | float,
    track_east: np.ndarray | float,
    track_north: np.ndarray | float,
) -> np.ndarray:
    """Emission rate (kg s-1) = line density (kg m-1) × |wind ⊥ track| (m s-1)."""
    return np.asarray(line_density, dtype=np.float64) * perpendicular_wind_m_s(
        wind_u_m_s, wind_v_m_s, track_east, track_north
    )


def _segments(lon: np.ndarray, lat: np.ndarray, gap_km: float) -> list[np.ndarray]:
    """Split time-ordered soundings where consecutive soundings are more than ``gap_km`` apart."""
    if lon.size == 0:
        return []
    step = haversine_km(lon[:-1], lat[:-1], lon[1:], lat[1:])
    breaks = np.flatnonzero(step > gap_km) + 1
    return np.split(np.arange(lon.size), breaks)


def _track_direction(lon: np.ndarray, lat: np.ndarray, distance_km: np.ndarray) -> tuple[float, float]:
    """Unit (east, north) direction of increasing along-track distance, from the principal axis."""
    lat0 = np.radians(np.mean(lat))
    x = np.radians(lon - lon[0]) * EARTH_RADIUS_KM * np.cos(lat0)
    yv = np.radians(lat - lat[0]) * EARTH_RADIUS_KM
    xy = np.stack([x - x.mean(), yv - yv.mean()], axis=1)
    if xy.shape[0] < 2 or not np.any(xy):
        return float("nan"), float("nan")
    axis = np.linalg.svd(xy, full_matrices=False)[2][0]
    if np.dot(xy @ axis, distance_km - distance_km.mean()) < 0:
        axis = -axis
    return float(axis[0]), float(axis[1])


_SOUNDING_VARIABLES = {
    "xco2": "xco2",
    "unc": "xco2_uncertainty",
    "flag": "xco2_quality_flag",
    "lon": "longitude",
    "lat": "latitude",
    "time": "time",
    "orbit": "orbit",
    "psurf": "psurf",
    "u_met": "windspeed_u_met",
    "v_met": "windspeed_v_met",
    "tcwv": "tcwv",
}
"""Carrier variable of every sounding field the scan reads."""


def _soundings(ds: xr.Dataset, config: PeakScanConfig, tcwv_kg_m2: float | None) -> dict[str, np.ndarray]:
    """Sounding fields of the carrier (units of the reader), with defaults for the optional ones:
    quality flag good, orbit -1, ``psurf`` 1013.25 hPa, no wind (NaN), ``tcwv`` ``tcwv_kg_m2`` or 0."""
    defaults = {
        "flag": float(config.quality_flag_good),
        "orbit": -1.0,
        "psurf": STANDARD_PRESSURE_PA / 100.0,
        "u_met": np.nan,
        "v_met": np.nan,
        "tcwv": 0.0 if tcwv_kg_m2 is None else float(tcwv_kg_m2),
    }
    n = ds.sizes.get("sounding", 0)
    fields: dict[str, np.ndarray] = {}
    for key, name in _SOUNDING_VARIABLES.items():
        if n == 0:
            dtype = {"time": "datetime64[ns]", "orbit": np.int64}.get(key, np.float64)
            fields[key] = np.zeros(0, dtype=dtype)
        elif name in ds.variables:
            fields[key] = np.asarray(ds[name].values)
        elif key in defaults:
            fields[key] = np.full(n, defaults[key], dtype=np.float64)
        else:
            raise KeyError(f"OCO-2 carrier lacks {name!r}")
    for key in ("xco2", "unc", "lon", "lat", "psurf", "u_met", "v_met", "tcwv"):
        fields[key] = fields[key].astype(np.float64)
    fields["orbit"] = fields["orbit"].astype(np.int64)
    return fields


def _peak_row(
    track: dict[str, np.ndarray],
    dist: np.ndarray,
    fit: TrackFit,
    i: int,
    config: PeakScanConfig,
    wind_m_s: tuple[float, float] | None,
) -> dict[str, object]:
    """The :data:`PEAK_COLUMNS` values (but ``orbit`` and ``segment``) of peak ``i`` of ``fit``.

    ``track`` holds the segment's sounding fields, ``dist`` their along-track distance (km).
    """
    ref = refine_peak(dist, track["xco2"], track["unc"], fit.centre_km[i], fit.sigma_km[i], config.window_km)
    c, s = ref.centre_km, ref.sigma_km
    near = np.abs(dist - c) <= 2.0 * s
    window = np.abs(dist - c) <= config.window_km / 2.0
    nearest = int(np.argmin(np.abs(dist - c)))
    east, north = _track_direction(track["lon"][window], track["lat"][window], dist[window])
    if wind_m_s is None:
        wu, wv = float(np.nanmedian(track["u_met"][near])), float(np.nanmedian(track["v_met"][near]))
    else:
        wu, wv = float(wind_m_s[0]), float(wind_m_s[1])
    ps = float(np.median(track["psurf"][near]))
    tc = float(np.median(track["tcwv"][near]))
    delta = ref.amplitude_ppm * s * _SQRT_2PI
    lam = float(line_density_kg_m(delta, ps, tc))
    rel_sd = ref.amplitude_sd_ppm / ref.amplitude_ppm
    if ref.converged:
        rel_sd = float(np.hypot(rel_sd, ref.sigma_sd_km / s))
    lam_sd = lam * rel_sd
    u_perp = float(perpendicular_wind_m_s(wu, wv, east, north))
    q = lam * u_perp
    return {
        "time": pd.Timestamp(track["time"][nearest], tz="UTC"),
        "longitude": float(track["lon"][nearest]),
        "latitude": float(track["lat"][nearest]),
        "distance_km": float(c),
        "amplitude_ppm": ref.amplitude_ppm,
        "amplitude_sd_ppm": ref.amplitude_sd_ppm,
        "sigma_km": float(s),
        "significance": float(fit.significance[i]),
        "n_soundings": int(fit.n_soundings[i]),
        "background_ppm": ref.background_ppm,
        "background_slope_ppm_km": ref.slope_ppm_km,
        "chi2_reduced": ref.chi2_reduced,
        "refined": ref.converged,
        "psurf_hpa": ps,
        "tcwv_kg_m2": tc,
        "line_density_ppm_km": float(delta),
        "line_density_kg_m": lam,
        "line_density_sd_kg_m": float(lam_sd),
        "track_east": east,
        "track_north": north,
        "wind_u_m_s": wu,
        "wind_v_m_s": wv,
        "wind_perpendicular_m_s": u_perp,
        "emission_kg_s": q,
        "emission_kg_h": q * SECONDS_PER_HOUR,
        "emission_sd_kg_h": float(lam_sd * u_perp * SECONDS_PER_HOUR),
    }


def scan_oco2_peaks(
    ds: xr.Dataset,
    wind_m_s: tuple[float, float] | None = None,
    config: PeakScanConfig = DEFAULT_PEAK_SCAN,
    tcwv_kg_m2: float | None = None,
) -> PeakScanResult:
    """Scan every orbit segment of an OCO-2 Lite carrier for along-track XCO2 peaks.

    Args:
        ds: OCO-2 reader output (dim ``sounding``): ``xco2``, ``xco2_uncertainty`` (ppm),
            ``xco2_quality_flag``, ``latitude``, ``longitude``, ``time``, ``orbit``, ``psurf`` (hPa),
            ``windspeed_u_met``/``windspeed_v_met`` (m s-1); optional ``tcwv`` (kg m-2).
        wind_m_s: ``(u, v)`` wind (m s-1, towards east/north) for the emission estimate; default the
            median OCO-2 Lite meteorology wind of the soundings within ``centre ± 2 σ``.
        config: scan settings (:class:`PeakScanConfig`).
        tcwv_kg_m2: total column water vapour (kg m-2) used in the line density when ``ds`` has no
            ``tcwv``; default 0 (a ≲ 0.5 % overestimate of the dry-air column).

    Returns:
        :class:`PeakScanResult`. ``peaks`` (one row per peak, :data:`PEAK_COLUMNS`): amplitude and
        its 1-sigma in ppm, width ``sigma_km``, ``significance = a / SE(a)``, line density in ppm·km
        and kg m-1 (1-sigma from the amplitude error only), perpendicular wind (m s-1) and emission
        in kg s-1 / kg h-1. ``outcomes`` (one row per orbit segment): ``status`` is ``"scanned"``,
        ``"too_few_soundings"`` or ``"no_valid_window"``; never raises for short or gappy tracks.
    """
    sounding = _soundings(ds, config, tcwv_kg_m2)
    good = (sounding["flag"] == config.quality_flag_good) & np.isfinite(sounding["xco2"])
    good &= np.isfinite(sounding["unc"]) & (sounding["unc"] > 0)
    good &= np.isfinite(sounding["lon"]) & np.isfinite(sounding["lat"])
    rows: list[dict] = []
    outcomes: list[dict] = []
    if ds.sizes.get("sounding", 0) == 0:
        outcomes.append(_outcome(-1, 0, 0, 0, "too_few_soundings"))
    orbit, times = sounding["orbit"], sounding["time"]
    for orb in np.unique(orbit):
        in_orbit = np.flatnonzero(orbit == orb)
        sel = in_orbit[good[in_orbit]]
        sel = sel[np.argsort(times[sel], kind="stable")]
        segments = _segments(sounding["lon"][sel], sounding["lat"][sel], config.segment_gap_km)
        for k, seg_local in enumerate(segments or [np.zeros(0, dtype=np.int64)]):
            seg = sel[seg_local]
            counts = (int(orb), k, int(in_orbit.size), int(seg.size))
            if seg.size < config.min_soundings:
                outcomes.append(_outcome(*counts, "too_few_soundings"))
                continue
            track = {key: value[seg] for key, value in sounding.items()}
            dist = haversine_km(track["lon"][0], track["lat"][0], track["lon"], track["lat"])
            fit = fit_track(dist, track["xco2"], track["unc"], config)
            if not fit.valid.any():
                outcomes.append(_outcome(*counts, "no_valid_window"))
                continue
            chosen = select_peaks(fit, config)
            outcomes.append(_outcome(*counts, "scanned", int(fit.valid.sum()), int(chosen.size)))
            for i in chosen:
                peak = _peak_row(track, dist, fit, i, config, wind_m_s)
                rows.append({"orbit": int(orb), "segment": k, **peak})
    peaks = pd.DataFrame(rows, columns=PEAK_COLUMNS)
    if not rows:
        peaks["time"] = pd.to_datetime(peaks["time"], utc=True)
    return PeakScanResult(peaks=peaks, outcomes=pd.DataFrame(outcomes, columns=OUTCOME_COLUMNS))


def _outcome(
    orbit: int,
    segment: int,
    n_soundings: int,
    n_good: int,
    status: str,
    n_windows_valid: int = 0,
    n_peaks: int = 0,
) -> dict[str, object]:
    """One :data:`OUTCOME_COLUMNS` row."""
    return {
        "orbit": orbit,
        "segment": segment,
        "n_soundings": n_soundings,
        "n_good": n_good,
        "n_windows_valid": n_windows_valid,
        "n_peaks": n_peaks,
        "status": status,
    }
