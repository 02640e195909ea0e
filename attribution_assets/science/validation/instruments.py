"""The instruments of the validation scenes: footprints, conversions, noise, artefacts and the
observation blocks the inversion receives.

Each instrument observes the puffs at its own overpass (:mod:`.puffs`): the true value of an
observation is the exact mean column over its footprint (through the point-spread function where
there is one), converted to the instrument's units, plus its retrieval artefact (:mod:`.artefacts`),
a background and white noise of the reported sd. The block the inversion gets describes the same
footprints through the quadrature the package's block builders use
(:mod:`attribution_assets.science.forward`): one point per pixel with the pixel width and PSF in
``sigma_floor_m`` for EMIT and GHGSat, ``n x n`` points over each footprint quadrilateral for TROPOMI
(4 x 4) and OCO-2 (3 x 3).

| instrument | grid | units | noise (reported sd) | background |
|---|---|---|---|---|
| EMIT | 36 x 36 pixels of 60 m, north-up, on the alert | ppm m | 300-450 ppm m | 0 |
| GHGSat | 40 x 40 pixels of 25 m, random orientation, PSF sd 25 m | ppb | 1-2 % of 1900 | 1900 ppb |
| TROPOMI | 7 x 7 pixels of 5.5 (along) x 7 km, heading +-17 deg | ppb | 10-15 (+-10 %) | 1850-1950 ppb |
| OCO-2 | 24 frames x 8 footprints of 2.25 x 1.29 km, 3-15 km downwind | ppm | 0.5-1 (+-10 %) | 405-420 ppm |

Pixel sizes and noise follow the package's sample scenes and the instruments' documentation (EMIT
~60 m and a per-pixel matched-filter sd of a few hundred ppm m, Thorpe et al. 2023, Sci. Adv. 9,
eadh2391; GHGSat ~25 m, Jervis et al. 2021, AMT 14, 2127; TROPOMI 5.5 x 7 km, ~10-15 ppb single-pixel
precision, Lorente et al. 2021, AMT 14, 665; OCO-2 footprints < 1.3 x 2.3 km, 8 across a ~10 km swath,
0.5-1 ppm single-sounding precision, O'Dell et al. 2018, AMT 11, 6539). Grid sizes are kept small so
that one inversion takes seconds; every instrument has a fixed grid, so events of one instrument set
share compiled programs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock, quadrilateral_quadrature
from attribution_assets.science.forward.plume import instrument_sigma_floor_m
from attribution_assets.science.units import KG_M2_PER_PPM_M_CH4, kg_m2_per_ppb, kg_m2_per_ppm
from attribution_assets.science.validation.artefacts import (
    Artefact,
    emit_clutter,
    ghgsat_artefact,
    oco2_artefact,
    tropomi_artefact,
)
from attribution_assets.science.validation.footprints import Footprints, pixel_grid
from attribution_assets.science.validation.puffs import PuffTrain

CH4_INSTRUMENTS = ("EMIT", "GHGSAT", "TROPOMI")
CO2_INSTRUMENTS = ("OCO2",)
INSTRUMENT_ORDER = CH4_INSTRUMENTS + CO2_INSTRUMENTS
"""Order of the blocks in a scene (whatever the overpass order), so that scenes with the same
instruments have the same problem structure."""
UNITS = {"EMIT": "ppm m", "GHGSAT": "ppb", "TROPOMI": "ppb", "OCO2": "ppm"}
GAS = {"EMIT": "CH4", "GHGSAT": "CH4", "TROPOMI": "CH4", "OCO2": "CO2"}

EMIT_PIXELS, EMIT_PIXEL_M, EMIT_NOISE_PPM_M = 36, 60.0, (300.0, 450.0)
GHGSAT_PIXELS, GHGSAT_PIXEL_M, GHGSAT_PSF_M = 40, 25.0, 25.0
GHGSAT_BACKGROUND_PPB, GHGSAT_NOISE_FRACTION = 1900.0, (0.01, 0.02)
TROPOMI_PIXELS, TROPOMI_ALONG_M, TROPOMI_ACROSS_M = 7, 5500.0, 7000.0
TROPOMI_NOISE_PPB, TROPOMI_BACKGROUND_PPB, TROPOMI_QUADRATURE = (10.0, 15.0), (1850.0, 1950.0), 4
OCO2_FRAMES, OCO2_FOOTPRINTS, OCO2_FRAME_M, OCO2_FOOTPRINT_M = 24, 8, 2250.0, 1290.0
OCO2_NOISE_PPM, OCO2_BACKGROUND_PPM, OCO2_QUADRATURE = (0.5, 1.0), (405.0, 420.0), 3
OCO2_CROSSING_DOWNWIND_M = (3000.0, 15000.0)
ALBEDO_RETRIEVAL_SD = 0.01
"""sd (1) of the retrieved surface albedo that GHGSat and TROPOMI blocks report about the albedo their
artefact follows (:mod:`.artefacts`), white per pixel: a fifth of the GHGSat scene's albedo
variability. The inversion regresses its artefact on the retrieved albedo
(:mod:`attribution_assets.science.inversion.albedo`)."""
ALBEDO_INSTRUMENTS = ("GHGSAT", "TROPOMI")
"""Instruments whose blocks report a retrieved surface albedo (EMIT's clutter follows a surface
pattern the matched filter does not report; OCO-2's biases follow the footprint)."""
IMAGER_PIXELS = {"EMIT": EMIT_PIXELS, "GHGSAT": GHGSAT_PIXELS}
"""Instruments whose blocks report their pixels' (row, column) on a square grid of this many columns
(``ObservationBlock.grid_index``), as the pipeline's EMIT and GHGSat blocks do."""
TRACK_HEADING_SPREAD_RAD = 0.3
"""Tracks run north +- this angle (TROPOMI, OCO-2: sun-synchronous, near-polar orbits)."""


@dataclass(frozen=True)
class Observation:
    """One simulated overpass: the ``block`` the inversion gets, and its parts in block units: the
    true ``plume`` enhancement, the ``artefact`` and the ``background``."""

    block: ObservationBlock
    plume: np.ndarray
    artefact: Artefact
    background: float


def footprints_for(
    instrument: str, rng: np.random.Generator, source_xy_m: np.ndarray, wind_direction_rad: float
) -> Footprints:
    """The footprints of ``instrument`` for an event whose alert is at the origin, whose source is at
    ``source_xy_m`` (m) and whose true wind at the overpass blows towards ``wind_direction_rad``; the
    OCO-2 track crosses the plume 3-15 km downwind of the source (a useful overpass), the imagers
    are centred on the alert (TROPOMI and GHGSat within half a pixel / 100 m)."""
    if instrument == "EMIT":
        return pixel_grid(np.zeros(2), EMIT_PIXELS, EMIT_PIXELS, EMIT_PIXEL_M, EMIT_PIXEL_M)
    if instrument == "GHGSAT":
        return pixel_grid(rng.uniform(-100.0, 100.0, 2), GHGSAT_PIXELS, GHGSAT_PIXELS, GHGSAT_PIXEL_M,
                          GHGSAT_PIXEL_M, rng.uniform(0.0, 2.0 * math.pi), GHGSAT_PSF_M)
    heading = math.pi / 2 + rng.uniform(-TRACK_HEADING_SPREAD_RAD, TRACK_HEADING_SPREAD_RAD)
    along = np.array([math.cos(heading), math.sin(heading)])
    across = np.array([along[1], -along[0]])
    if instrument == "TROPOMI":
        shift = (rng.uniform(-0.5, 0.5) * TROPOMI_ALONG_M * along
                 + rng.uniform(-0.5, 0.5) * TROPOMI_ACROSS_M * across)
        return pixel_grid(shift, TROPOMI_PIXELS, TROPOMI_PIXELS, TROPOMI_ALONG_M, TROPOMI_ACROSS_M, heading)
    if instrument == "OCO2":
        downwind = rng.uniform(*OCO2_CROSSING_DOWNWIND_M)
        crossing = np.asarray(source_xy_m, float) + downwind * np.array(
            [math.cos(wind_direction_rad), math.sin(wind_direction_rad)]
        )
        centre = (crossing - rng.uniform(-0.35, 0.35) * OCO2_FRAMES * OCO2_FRAME_M * along
                  - rng.uniform(-0.4, 0.4) * OCO2_FOOTPRINTS * OCO2_FOOTPRINT_M * across)
        return pixel_grid(centre, OCO2_FRAMES, OCO2_FOOTPRINTS, OCO2_FRAME_M, OCO2_FOOTPRINT_M, heading)
    raise ValueError(f"unknown instrument {instrument!r}; expected one of {INSTRUMENT_ORDER}")


def kg_m2_to_obs(instrument: str, surface_pressure_pa: float) -> float:
    """Conversion (block units per kg m-2): EMIT 1 / 7.16e-7 (ppm m), TROPOMI and GHGSat
    ``1 / kg_m2_per_ppb(p_s)`` (ppb CH4), OCO-2 ``1 / kg_m2_per_ppm(p_s)`` (ppm CO2)."""
    if instrument == "EMIT":
        return 1.0 / KG_M2_PER_PPM_M_CH4
    if instrument == "OCO2":
        return 1.0 / float(kg_m2_per_ppm(surface_pressure_pa, "CO2"))
    return 1.0 / float(kg_m2_per_ppb(surface_pressure_pa, "CH4"))


def _noise_background_artefact(
    instrument: str, rng: np.random.Generator, footprints: Footprints
) -> tuple[np.ndarray, float, Artefact]:
    """Reported sd (n,), background and artefact of one overpass (block units)."""
    n = footprints.size
    if instrument == "EMIT":
        return np.full(n, rng.uniform(*EMIT_NOISE_PPM_M)), 0.0, emit_clutter(rng, (EMIT_PIXELS, EMIT_PIXELS))
    if instrument == "GHGSAT":
        sd = GHGSAT_BACKGROUND_PPB * rng.uniform(*GHGSAT_NOISE_FRACTION)
        return np.full(n, sd), GHGSAT_BACKGROUND_PPB, ghgsat_artefact(rng, (GHGSAT_PIXELS, GHGSAT_PIXELS))
    if instrument == "TROPOMI":
        sd = rng.uniform(*TROPOMI_NOISE_PPB) * rng.uniform(0.9, 1.1, n)
        x, y = footprints.centres_xy_m.T
        artefact = tropomi_artefact(rng, (TROPOMI_PIXELS, TROPOMI_PIXELS), x, y)
        return sd, rng.uniform(*TROPOMI_BACKGROUND_PPB), artefact
    sd = rng.uniform(*OCO2_NOISE_PPM) * rng.uniform(0.9, 1.1, n)
    along = footprints.centres_xy_m @ footprints.axes[0]
    return sd, rng.uniform(*OCO2_BACKGROUND_PPM), oco2_artefact(rng, footprints.index_across, along)


def _quadrature(instrument: str, footprints: Footprints) -> tuple[np.ndarray, np.ndarray, float]:
    """The block's quadrature points (n, S, 2), weights (n, S) and ``sigma_floor_m``."""
    n = footprints.size
    if instrument in ("EMIT", "GHGSAT"):
        pixel = 2.0 * footprints.half_along_m
        floor = instrument_sigma_floor_m(pixel, footprints.blur_m)
        return footprints.centres_xy_m[:, None, :], np.ones((n, 1)), floor
    order = TROPOMI_QUADRATURE if instrument == "TROPOMI" else OCO2_QUADRATURE
    points, weights = quadrilateral_quadrature(footprints.corners_xy_m(), order)
    return points, weights, ObservationBlock.sigma_floor_m


def observe(
    instrument: str,
    rng: np.random.Generator,
    footprints: Footprints,
    puffs: PuffTrain,
    overpass: int,
    surface_pressure_pa: float,
    artefacts: bool = True,
) -> Observation:
    """The overpass of ``instrument`` (index ``overpass`` into the event's winds) seeing ``puffs``:
    ``y = background + artefact + k * mean column + noise`` with noise N(0, reported sd).
    ``artefacts=False`` leaves the artefact out (a zero field) and draws everything else the same.
    GHGSat and TROPOMI blocks with an artefact report the albedo it follows plus white retrieval
    error of ``ALBEDO_RETRIEVAL_SD``, drawn from a child stream of ``rng`` (``rng.spawn``) so that the
    event's other draws do not change."""
    k = kg_m2_to_obs(instrument, surface_pressure_pa)
    plume = k * puffs.footprint_mean_kg_m2(footprints)
    sigma, background, artefact = _noise_background_artefact(instrument, rng, footprints)
    if not artefacts:
        artefact = Artefact(np.zeros(footprints.size))
    y = background + artefact.values + plume + sigma * rng.standard_normal(footprints.size)
    points, weights, floor = _quadrature(instrument, footprints)
    n = footprints.size
    albedo = None
    if instrument in ALBEDO_INSTRUMENTS and artefact.surface is not None:
        albedo = artefact.surface + ALBEDO_RETRIEVAL_SD * rng.spawn(1)[0].standard_normal(n)
    grid = IMAGER_PIXELS.get(instrument)
    block = ObservationBlock(
        instrument=instrument, gas=GAS[instrument], units=UNITS[instrument], y=y, sigma=sigma,
        points_xy_m=points, weights=weights, kg_m2_to_obs=np.full(n, k), overpass=overpass,
        lon=np.zeros(n), lat=np.zeros(n), sigma_floor_m=floor, albedo=albedo,
        grid_index=None if grid is None else np.stack(np.divmod(np.arange(n), grid), axis=-1),
    )
    return Observation(block=block, plume=plume, artefact=artefact, background=background)
