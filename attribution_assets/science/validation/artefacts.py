"""Retrieval artefacts of the validation scenes, in each instrument's units.

The inversion models each block as one constant background plus the plume plus white noise of the
reported sd. Real retrievals add structured errors that follow the surface or the region; the scenes
add one kind per instrument (amplitudes are this module's choices, within the ranges the cited
papers describe; each function returns the parameters it drew):

- **TROPOMI** (ppb): a residual dependence on SWIR surface albedo, linear with a slope of 20-60 ppb
  per unit albedo of either sign, on an albedo field of 0.25 +- 0.04-0.06 correlated over 1-2 pixels
  (1-4 ppb rms). The operational product is corrected a posteriori for its albedo dependence,
  which spans tens of ppb over the albedo range before correction (Lorente et al. 2021, AMT 14,
  665); what remains is of the order used here. Plus a smooth regional gradient of 2-10 ppb per
  100 km in a random direction.
- **GHGSat** (ppb): an instrument offset N(0, 15 ppb) and an albedo artefact of 100-300 ppb per unit
  albedo on a 25 m albedo field of 0.20 +- 0.05 correlated over 2-4 pixels (5-15 ppb rms); surface
  features leaking into the retrieval are the main artefact of GHGSat imagery (Jervis et al. 2021,
  AMT 14, 2127).
- **EMIT** (ppm m): matched-filter surface clutter, a spatially correlated field (1-3 pixels) of
  80-200 ppm m sd whose correlation with a surface pattern is 0.5-0.9: matched filters turn surface
  spectral structure into false enhancements (Cusworth et al. 2019, AMT 12, 5655; Thorpe et al. 2023,
  Sci. Adv. 9, eadh2391), not included in the per-pixel uncertainty.
- **OCO-2** (ppm): per-footprint biases N(0, 0.2 ppm) for footprints 1-8 (the footprint-dependent
  bias that the ACOS bias correction addresses, O'Dell et al. 2018, AMT 11, 6539) and an along-track
  gradient N(0, 0.01 ppm km-1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from attribution_assets.science.validation.surfaces import albedo_field, correlated_field

TROPOMI_ALBEDO_SLOPE_PPB = (20.0, 60.0)
"""Range of |d XCH4 / d albedo| (ppb per unit albedo)."""
TROPOMI_ALBEDO_SD = (0.04, 0.06)
TROPOMI_GRADIENT_PPB_PER_100KM = (2.0, 10.0)
GHGSAT_OFFSET_SD_PPB = 15.0
GHGSAT_ALBEDO_SLOPE_PPB = (100.0, 300.0)
GHGSAT_ALBEDO_SD = 0.05
EMIT_CLUTTER_SD_PPM_M = (80.0, 200.0)
EMIT_CLUTTER_SURFACE_CORRELATION = (0.5, 0.9)
EMIT_CLUTTER_CORR_PX = (1.0, 3.0)
OCO2_FOOTPRINT_BIAS_SD_PPM = 0.2
OCO2_GRADIENT_SD_PPM_PER_KM = 0.01


@dataclass(frozen=True)
class Artefact:
    """An artefact field ``values`` (observation units, one per observation), the ``parameters`` it
    was drawn with and the ``surface`` field it follows (albedo or a unit-sd pattern; None if none)."""

    values: np.ndarray
    parameters: dict[str, float] = field(default_factory=dict)
    surface: np.ndarray | None = None


def _signed(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A magnitude uniform in ``bounds`` with a random sign."""
    return float(rng.choice([-1.0, 1.0]) * rng.uniform(*bounds))


def tropomi_artefact(rng: np.random.Generator, shape: tuple[int, int], x_m: np.ndarray,
                     y_m: np.ndarray) -> Artefact:
    """Albedo bias plus regional gradient (ppb) on a TROPOMI grid of ``shape`` (pixel centres ``x_m``,
    ``y_m`` in m, raveled in ``shape`` order); parameters ``albedo_slope_ppb``, ``gradient_ppb_per_100km``,
    ``gradient_direction_rad``."""
    albedo = albedo_field(rng, shape, 0.25, rng.uniform(*TROPOMI_ALBEDO_SD), rng.uniform(1.0, 2.0)).ravel()
    slope = _signed(rng, TROPOMI_ALBEDO_SLOPE_PPB)
    gradient = rng.uniform(*TROPOMI_GRADIENT_PPB_PER_100KM)
    direction = rng.uniform(0.0, 2.0 * math.pi)
    ramp = gradient * 1e-5 * (x_m * math.cos(direction) + y_m * math.sin(direction))
    values = slope * (albedo - albedo.mean()) + ramp - ramp.mean()
    params = {"albedo_slope_ppb": slope, "gradient_ppb_per_100km": gradient,
              "gradient_direction_rad": direction}
    return Artefact(values, params, albedo)


def ghgsat_artefact(rng: np.random.Generator, shape: tuple[int, int]) -> Artefact:
    """Instrument offset plus albedo artefact (ppb) on a GHGSat grid of ``shape``; parameters
    ``offset_ppb``, ``albedo_slope_ppb``."""
    albedo = albedo_field(rng, shape, 0.20, GHGSAT_ALBEDO_SD, rng.uniform(2.0, 4.0)).ravel()
    offset = GHGSAT_OFFSET_SD_PPB * float(rng.standard_normal())
    slope = _signed(rng, GHGSAT_ALBEDO_SLOPE_PPB)
    values = offset + slope * (albedo - albedo.mean())
    return Artefact(values, {"offset_ppb": offset, "albedo_slope_ppb": slope}, albedo)


def emit_clutter(rng: np.random.Generator, shape: tuple[int, int]) -> Artefact:
    """Matched-filter clutter (ppm m) on an EMIT grid of ``shape``: ``sd (r S + sqrt(1 - r^2) Z)`` with
    ``S`` the unit-sd surface pattern (returned as ``surface``) and ``Z`` an independent field of the
    same correlation length; parameters ``clutter_sd_ppm_m``, ``surface_correlation``, ``corr_px``."""
    corr_px = rng.uniform(*EMIT_CLUTTER_CORR_PX)
    surface = correlated_field(rng, shape, corr_px)
    other = correlated_field(rng, shape, corr_px)
    sd = rng.uniform(*EMIT_CLUTTER_SD_PPM_M)
    r = rng.uniform(*EMIT_CLUTTER_SURFACE_CORRELATION)
    values = sd * (r * surface + math.sqrt(1.0 - r**2) * other)
    return Artefact(values.ravel(), {"clutter_sd_ppm_m": sd, "surface_correlation": r, "corr_px": corr_px},
                    surface.ravel())


def oco2_artefact(rng: np.random.Generator, footprint: np.ndarray, along_track_m: np.ndarray) -> Artefact:
    """Per-footprint bias plus along-track gradient (ppm) for soundings with footprint numbers
    ``footprint`` (0-7) at along-track positions ``along_track_m`` (m); parameters
    ``footprint_bias_<i>_ppm`` and ``gradient_ppm_per_km``."""
    biases = OCO2_FOOTPRINT_BIAS_SD_PPM * rng.standard_normal(8)
    gradient = OCO2_GRADIENT_SD_PPM_PER_KM * float(rng.standard_normal())
    ramp = gradient * 1e-3 * along_track_m
    params = {f"footprint_bias_{i}_ppm": float(b) for i, b in enumerate(biases)}
    params["gradient_ppm_per_km"] = gradient
    return Artefact(biases[np.asarray(footprint, int)] + ramp - ramp.mean(), params)
