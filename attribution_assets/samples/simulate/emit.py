"""EMIT L1B radiance scenes: the bundled sample scene (:func:`emit_scene`) and random plume cubes for the
detection tests and benchmarks (:func:`emit_plume_cube`).

Radiance is a smooth solar/atmospheric spectrum times surface reflectance mixtures times the Beer-Lambert
CH4 term ``exp(k * alpha)`` (Thompson et al. 2015, AMT 8, 4383; Foote et al. 2020, IEEE TGRS 58, 6480),
plus noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import jax.numpy as jnp
import numpy as np
import xarray as xr

from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.samples.geometry import bearing_vector, cos_solar_zenith, downwind_point_xy, swath_xy
from attribution_assets.samples.plume import column_enhancement_jit, plume_column_kg_m2
from attribution_assets.samples.simulate import smooth_field
from attribution_assets.samples.truth import Event, Overpass
from attribution_assets.samples.weather import elevation_m
from attribution_assets.science.forward.absorption import band_unit_absorption
from attribution_assets.science.forward.plume import instrument_sigma_floor_m
from attribution_assets.science.units import KG_M2_PER_PPM_M_CH4, kg_h_to_kg_s
from attribution_assets.times import iso_z

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
        omega = column_enhancement_jit(
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
    uW/cm^2/SR/nm with ``alpha`` the true plume (ppm m) averaged over each raw pixel (60 m):
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
    alpha_ppm_m = plume_column_kg_m2(ev, op, lon, lat, pixel_m=EMIT_PIXEL_M) / KG_M2_PER_PPM_M_CH4
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
