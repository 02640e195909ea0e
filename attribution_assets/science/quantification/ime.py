"""Single-image emission rate baselines: integrated mass enhancement (IME) and cross-sectional flux (CSF).

IME (Frankenberg et al. 2016, PNAS 113, 9734; Varon et al. 2018, AMT 11, 5673)::

    IME = sum_j dOmega_j A_j            (kg, over the plume mask)
    L   = sqrt(sum_j A_j)               (m, plume length scale)
    Q   = U_eff * IME / L               (kg s-1)

CSF (Varon et al. 2018; Krings et al. 2011, AMT 4, 1735): ``Q = U_eff * integral dOmega dy`` along
transects perpendicular to the wind, averaged over several downwind distances.

The effective wind ``U_eff`` is an empirical function of the 10 m wind calibrated with large-eddy
simulations for each instrument's resolution and noise; :data:`U_EFF_CALIBRATIONS` holds them all in one
place. Uncertainty is propagated by Monte Carlo over the 10 m wind error (SRON model: 50 % for
U10 <= 3 m s-1, else 1.5 m s-1), the per-pixel enhancement noise and (IME) the plume mask (randomly eroded
or dilated by one pixel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.interpolate import RegularGridInterpolator

from attribution_assets.science.met.wind import sron_wind_speed_error_m_s
from attribution_assets.science.units import kg_s_to_kg_h

MIN_WIND_M_S = 0.1


@dataclass(frozen=True)
class EffectiveWind:
    """``U_eff = a * U10 + b`` (``form="linear"``) or ``a * ln(U10) + b`` (``form="log"``), m s-1."""

    instrument: str
    method: str
    form: str
    a: float
    b: float
    citation: str

    def __call__(self, u10_m_s: np.ndarray | float) -> np.ndarray:
        u10 = np.maximum(np.asarray(u10_m_s, np.float64), MIN_WIND_M_S)
        value = self.a * (np.log(u10) if self.form == "log" else u10) + self.b
        return np.maximum(value, MIN_WIND_M_S)


U_EFF_CALIBRATIONS: dict[str, EffectiveWind] = {
    cal.instrument + "/" + cal.method: cal
    for cal in (
        EffectiveWind("EMIT", "IME", "linear", 0.36, 0.66,
                      "UNEP IMEO EMIT plume quantification (LES calibration for 60 m pixels)"),
        EffectiveWind("EMIT_SRON", "IME", "linear", 0.36, 0.43,
                      "SRON EMIT point-source calibration"),
        EffectiveWind("GHGSAT", "IME", "log", 0.9, 0.6,
                      "Varon et al. 2018, AMT 11, 5673 (50 m pixels); coefficients not re-verified"),
        EffectiveWind("SENTINEL2", "IME", "linear", 0.33, 0.45,
                      "Varon et al. 2021, AMT 14, 2771"),
        EffectiveWind("PRISMA", "IME", "linear", 0.34, 0.44,
                      "PRISMA/EnMAP point-source calibration as used operationally (PRISMA methane mapping: "
                      "Guanter et al. 2021, RSE 265, 112671); original coefficients not re-verified"),
        EffectiveWind("ENMAP", "IME", "linear", 0.34, 0.44,
                      "as PRISMA (same 30 m class of imaging spectrometer)"),
        EffectiveWind("EMIT", "CSF", "linear", 1.12, 0.0, "SRON EMIT cross-sectional-flux calibration"),
    )
}
"""Keyed ``"INSTRUMENT/METHOD"``, e.g. ``"EMIT/IME"``, ``"GHGSAT/IME"``, ``"EMIT/CSF"``."""


def effective_wind(instrument: str, method: str = "IME") -> EffectiveWind:
    """The calibration for ``instrument`` and ``method``; raises ``KeyError`` listing the known ones."""
    key = f"{instrument.upper()}/{method.upper()}"
    if key not in U_EFF_CALIBRATIONS:
        raise KeyError(f"no effective-wind calibration {key!r}; known: {sorted(U_EFF_CALIBRATIONS)}")
    return U_EFF_CALIBRATIONS[key]


@dataclass(frozen=True)
class QuantificationResult:
    """Emission rate (kg h-1) from a single image: Monte-Carlo mean, sd and 5/95 % quantiles."""

    rate_kg_h: float
    rate_kg_h_sd: float
    rate_kg_h_p05: float
    rate_kg_h_p95: float
    rate_kg_h_point: float
    method: str
    instrument: str
    n_samples: int


def integrated_mass_enhancement_kg(
    enhancement_kg_m2: np.ndarray, mask: np.ndarray, pixel_area_m2: float
) -> float:
    """IME (kg): sum of the column enhancement (kg m-2) times the pixel area (m2) over the mask."""
    values = np.where(np.asarray(mask, bool), np.asarray(enhancement_kg_m2, np.float64), 0.0)
    return float(np.nansum(values) * pixel_area_m2)


def ime_length_m(mask: np.ndarray, pixel_area_m2: float) -> float:
    """Plume length scale L = sqrt(plume area) (m)."""
    return math.sqrt(float(np.count_nonzero(mask)) * pixel_area_m2)


def ime_rate_kg_s(
    enhancement_kg_m2: np.ndarray, mask: np.ndarray, pixel_area_m2: float, u_eff_m_s: float
) -> float:
    """IME emission rate ``Q = U_eff IME / L`` (kg s-1); 0 for an empty mask."""
    length = ime_length_m(mask, pixel_area_m2)
    if length == 0.0:
        return 0.0
    return u_eff_m_s * integrated_mass_enhancement_kg(enhancement_kg_m2, mask, pixel_area_m2) / length


def csf_line_densities_kg_m(
    enhancement_kg_m2: np.ndarray, x_m: np.ndarray, y_m: np.ndarray, source_xy_m: tuple[float, float],
    wind_direction_rad: float, distances_m: np.ndarray, half_width_m: float, step_m: float | None = None,
) -> np.ndarray:
    """``integral dOmega dy`` (kg m-1) along crosswind transects at ``distances_m`` downwind of the source.

    ``enhancement_kg_m2`` (ny, nx) on the regular local grid ``y_m`` (ny,), ``x_m`` (nx,) (metres,
    increasing); ``wind_direction_rad`` the direction the air moves to (counter-clockwise from east).
    The field is sampled bilinearly every ``step_m`` (default half a pixel) over ``+/- half_width_m``;
    NaN and outside-grid samples count as 0 (mask the field beforehand to suppress noise).
    """
    field = np.nan_to_num(np.asarray(enhancement_kg_m2, np.float64))
    interp = RegularGridInterpolator((np.asarray(y_m, float), np.asarray(x_m, float)), field,
                                     bounds_error=False, fill_value=0.0)
    step = step_m or 0.5 * float(min(np.abs(np.diff(x_m)).min(), np.abs(np.diff(y_m)).min()))
    s = np.arange(-half_width_m, half_width_m + 0.5 * step, step)
    along = np.array([math.cos(wind_direction_rad), math.sin(wind_direction_rad)])
    across = np.array([-along[1], along[0]])
    centres = np.asarray(source_xy_m, float)[None, :] + np.asarray(distances_m, float)[:, None] * along
    points = centres[:, None, :] + s[None, :, None] * across[None, None, :]
    values = interp(points[..., ::-1].reshape(-1, 2)).reshape(points.shape[:2])
    return values.sum(axis=1) * step


def csf_rate_kg_s(line_densities_kg_m: np.ndarray, u_eff_m_s: float) -> float:
    """CSF emission rate ``Q = U_eff * mean(integral dOmega dy)`` (kg s-1) over the transects."""
    return float(u_eff_m_s * np.mean(line_densities_kg_m))


def _wind_draws(rng: np.random.Generator, u10: float, u10_sd: float | None, n: int) -> np.ndarray:
    sd = sron_wind_speed_error_m_s(u10) if u10_sd is None else float(u10_sd)
    return np.maximum(u10 + sd * rng.standard_normal(n), MIN_WIND_M_S)


def _mask_variants(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat pixel indices of the mask dilated by one pixel, and which of them belong to each of
    the three mask variants (rows: eroded by one pixel, or the mask itself when erosion empties it;
    the mask; dilated), as a (3, n) 0/1 matrix."""
    eroded = ndimage.binary_erosion(mask)
    dilated = ndimage.binary_dilation(mask)
    pixels = np.flatnonzero(dilated)
    members = np.stack([(eroded if eroded.any() else mask).ravel()[pixels], mask.ravel()[pixels],
                        dilated.ravel()[pixels]]).astype(np.float64)
    return pixels, members


MASK_CHOICE = np.array([0, 1, 1, 2])
"""Row of :func:`_mask_variants` of each of the four equally likely draws: erode (1/4), keep (1/2),
dilate (1/4)."""
DRAWS_PER_BLOCK_VALUES = 4_000_000
"""Noise values drawn at once (draws x pixels), bounding the memory of a Monte-Carlo block (32 MB)."""


def _summarise(
    samples_kg_s: np.ndarray, point_kg_s: float, method: str, instrument: str
) -> QuantificationResult:
    rates = kg_s_to_kg_h(np.asarray(samples_kg_s, np.float64))
    return QuantificationResult(
        rate_kg_h=float(np.mean(rates)), rate_kg_h_sd=float(np.std(rates, ddof=1)),
        rate_kg_h_p05=float(np.quantile(rates, 0.05)), rate_kg_h_p95=float(np.quantile(rates, 0.95)),
        rate_kg_h_point=float(kg_s_to_kg_h(point_kg_s)), method=method, instrument=instrument,
        n_samples=int(rates.size),
    )


def quantify_ime(
    enhancement_kg_m2: np.ndarray, enhancement_sd_kg_m2: np.ndarray | float, mask: np.ndarray,
    pixel_area_m2: float, u10_m_s: float, instrument: str, u10_sd_m_s: float | None = None,
    n_samples: int = 1000, seed: int = 0, perturb_mask: bool = True,
) -> QuantificationResult:
    """IME emission rate (kg h-1) with Monte-Carlo uncertainty.

    Each draw perturbs the 10 m wind (``u10_sd_m_s``, default the SRON error model), adds Gaussian
    noise of ``enhancement_sd_kg_m2`` (kg m-2, scalar or per pixel) to the masked pixels and, with
    ``perturb_mask``, erodes (p = 1/4) or dilates (p = 1/4) the mask by one pixel; ``U_eff`` comes from
    :data:`U_EFF_CALIBRATIONS` for ``instrument``. Deterministic for a given ``seed``.
    """
    calibration = effective_wind(instrument, "IME")
    rng = np.random.default_rng(seed)
    field = np.nan_to_num(np.asarray(enhancement_kg_m2, np.float64))
    sd = np.broadcast_to(np.asarray(enhancement_sd_kg_m2, np.float64), field.shape)
    mask = np.asarray(mask, bool)
    winds = calibration(_wind_draws(rng, u10_m_s, u10_sd_m_s, n_samples))
    # noise is drawn for the pixels of the dilated mask only: the three mask variants lie inside it
    if perturb_mask:
        pixels, members = _mask_variants(mask)
    else:
        pixels, members = np.flatnonzero(mask), np.ones((3, int(mask.sum())))
    choices = MASK_CHOICE[rng.integers(0, 4, n_samples)] if perturb_mask else np.ones(n_samples, int)
    values, sds = field.ravel()[pixels], sd.ravel()[pixels]
    lengths_m = np.sqrt(members.sum(axis=1) * pixel_area_m2)  # L = sqrt(plume area), m
    samples = np.empty(n_samples)
    block = max(1, DRAWS_PER_BLOCK_VALUES // max(pixels.size, 1))
    for start in range(0, n_samples, block):
        stop = min(start + block, n_samples)
        noisy = values + sds * rng.standard_normal((stop - start, pixels.size))
        masses_kg = np.nan_to_num(noisy) @ members.T * pixel_area_m2  # (draws, 3 variants)
        chosen = choices[start:stop]
        length = lengths_m[chosen]
        mass = masses_kg[np.arange(stop - start), chosen]
        rates = winds[start:stop] * mass / np.where(length > 0, length, 1.0)
        samples[start:stop] = np.where(length > 0, rates, 0.0)  # an empty mask emits nothing
    point = ime_rate_kg_s(field, mask, pixel_area_m2, float(calibration(u10_m_s)))
    return _summarise(samples, point, "IME", calibration.instrument)


def quantify_csf(
    enhancement_kg_m2: np.ndarray, enhancement_sd_kg_m2: np.ndarray | float, x_m: np.ndarray, y_m: np.ndarray,
    source_xy_m: tuple[float, float], wind_direction_rad: float, u10_m_s: float, instrument: str,
    distances_m: np.ndarray, half_width_m: float, u10_sd_m_s: float | None = None, n_samples: int = 300,
    seed: int = 0,
) -> QuantificationResult:
    """CSF emission rate (kg h-1) with Monte-Carlo uncertainty over wind error and enhancement noise.

    Arguments as in :func:`csf_line_densities_kg_m`; ``U_eff`` from :data:`U_EFF_CALIBRATIONS`
    (``"<instrument>/CSF"``).
    """
    calibration = effective_wind(instrument, "CSF")
    rng = np.random.default_rng(seed)
    field = np.nan_to_num(np.asarray(enhancement_kg_m2, np.float64))
    sd = np.broadcast_to(np.asarray(enhancement_sd_kg_m2, np.float64), field.shape)
    winds = calibration(_wind_draws(rng, u10_m_s, u10_sd_m_s, n_samples))
    args = (x_m, y_m, source_xy_m, wind_direction_rad, distances_m, half_width_m)
    samples = np.empty(n_samples)
    for i in range(n_samples):
        noisy = field + sd * rng.standard_normal(field.shape)
        samples[i] = csf_rate_kg_s(csf_line_densities_kg_m(noisy, *args), float(winds[i]))
    point = csf_rate_kg_s(csf_line_densities_kg_m(field, *args), float(calibration(u10_m_s)))
    return _summarise(samples, point, "CSF", calibration.instrument)
