"""Validation events whose plumes come from a different physics than the inversion's Gaussian plume.

:func:`generate_scene` draws one event of a source class:

| class | gas | rate | instruments |
|---|---|---|---|
| ``none`` | CH4 (every 4th: CO2) | 0 | as the sourced classes of that gas |
| ``weak`` | CH4 | 80-300 kg h-1, log-uniform | 1-3 of EMIT, GHGSat, TROPOMI |
| ``medium`` | CH4 | 300-2000 kg h-1 | 1-3 of EMIT, GHGSat, TROPOMI |
| ``strong`` | CH4 | 2000-25 000 kg h-1 | 1-3 of EMIT, GHGSat, TROPOMI |
| ``co2_power_plant`` | CO2 | 0.5-5 Mt yr-1 (57 000-570 000 kg h-1) | one OCO-2 track |

The source lies N(0, 300 m) (per axis) from the alert at the origin: the alert's location error is the
one the inversion is told, its position prior (sd ``InversionSettings.position_sd_m`` around the
alert), as the met analysis reports its own error (:mod:`.met_analysis`). The physics is what the set
gets wrong, not the prior's width: with sources N(0, 150 m) inside a 300 m prior, every answer the
data leave at the prior covered its truth (position coverage 100 % for the non-detections of every
class). Each instrument passes at its own time, uniform within a 4 h
window, and sees the puffs (:mod:`.puffs`) of a release that began long enough before (twice the
time the mean wind takes to cross its farthest footprint, 1-8 h, so the plume fills its scene as the
inversion's steady plume assumes) in one true wind series (:mod:`.meander`): synoptic speed
2-7 m s-1, a veer of N(0, 5 deg h-1) and a speed trend of N(0, 5 % h-1) between overpasses, a
meander of 10-25 degrees sd and 20-30 % gusts. Daytime stability, Pasquill-Gifford index 1-3 (B-D),
sets the puff spread. Surface elevation 0-1500 m sets the surface pressure of the unit conversions.
The inversion gets one met prior per overpass (:mod:`.met_analysis`) and the blocks in a fixed
instrument order (``block.overpass`` gives the overpass).

Everything is drawn from the generator passed in: :func:`validation_set` gives event ``i`` the
generator ``numpy.random.default_rng([seed, i])``, so a set is reproducible and any of its events can
be regenerated alone from its seed, index and class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion.settings import InversionSettings
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import (
    PRESSURE_SCALE_HEIGHT_M,
    SECONDS_PER_HOUR,
    STANDARD_PRESSURE_PA,
    kg_h_to_kg_s,
)
from attribution_assets.science.validation.instruments import (
    CH4_INSTRUMENTS,
    CO2_INSTRUMENTS,
    INSTRUMENT_ORDER,
    Observation,
    footprints_for,
    observe,
)
from attribution_assets.science.validation.meander import SynopticWind, Turbulence, meandering_wind
from attribution_assets.science.validation.met_analysis import analysed_wind
from attribution_assets.science.validation.puffs import puff_train

KINDS = ("none", "weak", "medium", "strong", "co2_power_plant")
"""Source classes, in report order."""
SOURCED_KINDS = KINDS[1:]
RATE_KG_H = {"weak": (80.0, 300.0), "medium": (300.0, 2000.0), "strong": (2000.0, 25000.0)}
"""CH4 rate range (kg h-1) of each class; rates are log-uniform within it."""
KG_H_PER_MT_YR = 1e9 / (365.25 * 24.0)
"""1 Mt yr-1 in kg h-1 (114 077)."""
CO2_RATE_MT_YR = (0.5, 5.0)
SOURCE_OFFSET_SD_M = InversionSettings().position_sd_m
"""sd (m, per axis) of the source's offset from the alert: the inversion's position prior sd."""
OVERPASS_WINDOW_H = 4.0
SPEED_M_S = (2.0, 7.0)
VEER_SD_RAD_H = math.radians(5.0)
SPEED_TREND_SD_PER_H = 0.05
MEANDER_SD_RAD = (math.radians(10.0), math.radians(25.0))
GUST_LOG_SD = (0.2, 0.3)
STABILITY_INDEX = (1.0, 3.0)
RELEASE_H = (1.0, 8.0)
"""Shortest and longest release before an overpass (h)."""
ELEVATION_M = (0.0, 1500.0)
NONE_SHARE = 0.35
"""Share of "none" events in :func:`validation_set`."""
EPOCH = datetime(2025, 6, 1, 16, 0)
"""Time of hour 0 of every event (the times only label the winds)."""


@dataclass(frozen=True)
class SceneTruth:
    """The truth of one event: class, gas, rate (kg h-1; 0 for none), source position (m, local frame
    of the alert), stability index, and per overpass the time (h after the first possible overpass),
    the true synoptic wind (m s-1) and the release duration before it (h)."""

    kind: str
    gas: str
    rate_kg_h: float
    source_x_m: float
    source_y_m: float
    stability_index: float
    overpass_hours: tuple[float, ...]
    wind_u_m_s: tuple[float, ...]
    wind_v_m_s: tuple[float, ...]
    release_hours: tuple[float, ...]


@dataclass(frozen=True)
class Scene:
    """One validation event: the inversion's inputs (``blocks``, ``winds``, ``gas``), the ``truth``,
    the ``instruments`` of the blocks and each block's true ``observations`` (plume, artefact,
    background)."""

    index: int
    blocks: list[ObservationBlock]
    winds: list[OverpassWind]
    gas: str
    truth: SceneTruth
    instruments: tuple[str, ...]
    observations: tuple[Observation, ...]


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def draw_rate_kg_h(rng: np.random.Generator, kind: str) -> float:
    """True rate (kg h-1) of a source of class ``kind``: 0 for "none", log-uniform in the class range."""
    if kind == "none":
        return 0.0
    if kind == "co2_power_plant":
        return _log_uniform(rng, CO2_RATE_MT_YR) * KG_H_PER_MT_YR
    return _log_uniform(rng, RATE_KG_H[kind])


def _instruments(rng: np.random.Generator, gas: str) -> tuple[str, ...]:
    """One OCO-2 track for CO2; 1-3 distinct CH4 instruments (each count equally likely)."""
    if gas == "CO2":
        return CO2_INSTRUMENTS
    chosen = rng.choice(len(CH4_INSTRUMENTS), size=int(rng.integers(1, 4)), replace=False)
    return tuple(CH4_INSTRUMENTS[i] for i in sorted(chosen))


def generate_scene(
    rng: np.random.Generator, kind: str, gas: str | None = None, index: int = 0, artefacts: bool = True
) -> Scene:
    """One event of class ``kind`` (see :data:`KINDS`), numbered ``index``; ``gas`` chooses the gas of
    a "none" event ("CH4" by default; "CO2" gives an OCO-2 event). ``artefacts=False`` gives the same
    event without retrieval artefacts. Deterministic given the state of ``rng``."""
    if kind not in KINDS:
        raise ValueError(f"unknown class {kind!r}; expected one of {KINDS}")
    own_gas = "CO2" if kind == "co2_power_plant" else "CH4"
    if kind != "none" and gas is not None and gas.upper() != own_gas:
        raise ValueError(f"class {kind!r} is a {own_gas} class, not {gas}")
    gas = (gas or own_gas).upper()
    instruments = _instruments(rng, gas)
    rate_kg_h = draw_rate_kg_h(rng, kind)
    source = SOURCE_OFFSET_SD_M * rng.standard_normal(2)
    hours = np.sort(rng.uniform(0.0, OVERPASS_WINDOW_H, len(instruments)))
    order = rng.permutation(len(instruments))  # which instrument passes first
    synoptic = SynopticWind(
        speed_m_s=rng.uniform(*SPEED_M_S), direction_rad=rng.uniform(0.0, 2.0 * math.pi),
        speed_trend_per_s=SPEED_TREND_SD_PER_H * rng.standard_normal() / SECONDS_PER_HOUR,
        veer_rad_s=VEER_SD_RAD_H * rng.standard_normal() / SECONDS_PER_HOUR,
    )
    turbulence = Turbulence(direction_sd_rad=rng.uniform(*MEANDER_SD_RAD),
                            speed_log_sd=rng.uniform(*GUST_LOG_SD))
    stability = rng.uniform(*STABILITY_INDEX)
    pressure = STANDARD_PRESSURE_PA * math.exp(-rng.uniform(*ELEVATION_M) / PRESSURE_SCALE_HEIGHT_M)
    t_obs = {name: hours[rank] * SECONDS_PER_HOUR for name, rank in zip(instruments, order, strict=True)}
    footprints, release_s = {}, {}
    for name in instruments:
        direction = float(synoptic.direction_at(t_obs[name]))
        footprints[name] = footprints_for(name, rng, source, direction)
        crossing_s = footprints[name].max_distance_m(source) / float(synoptic.speed_at(t_obs[name]))
        release_s[name] = float(np.clip(2.0 * crossing_s, *(h * SECONDS_PER_HOUR for h in RELEASE_H)))
    wind = meandering_wind(rng, synoptic, turbulence, min(t_obs[n] - release_s[n] for n in instruments),
                           max(t_obs.values()))
    observations = {}
    for name in instruments:
        puffs = puff_train(source, kg_h_to_kg_s(rate_kg_h), wind, t_obs[name], release_s[name], stability)
        overpass = int(order[instruments.index(name)])
        observations[name] = observe(name, rng, footprints[name], puffs, overpass, pressure, artefacts)
    by_overpass = sorted(instruments, key=lambda name: t_obs[name])
    true_winds = [synoptic.vector_at(t_obs[name]) for name in by_overpass]
    winds = [analysed_wind(rng, u, v, stability, EPOCH + timedelta(seconds=t_obs[name]), pressure)
             for name, (u, v) in zip(by_overpass, true_winds, strict=True)]
    ordered = tuple(name for name in INSTRUMENT_ORDER if name in instruments)
    truth = SceneTruth(
        kind=kind, gas=gas, rate_kg_h=rate_kg_h, source_x_m=float(source[0]), source_y_m=float(source[1]),
        stability_index=float(stability),
        overpass_hours=tuple(t_obs[name] / SECONDS_PER_HOUR for name in by_overpass),
        wind_u_m_s=tuple(u for u, _ in true_winds), wind_v_m_s=tuple(v for _, v in true_winds),
        release_hours=tuple(release_s[name] / SECONDS_PER_HOUR for name in by_overpass),
    )
    return Scene(index=index, blocks=[observations[name].block for name in ordered], winds=winds, gas=gas,
                 truth=truth, instruments=ordered, observations=tuple(observations[name] for name in ordered))


def scene_kinds(n_events: int, seed: int) -> list[tuple[str, str]]:
    """(class, gas) of each of ``n_events`` events: ``ceil(NONE_SHARE n)`` "none" events (every 4th of
    them CO2), the others cycling through the sourced classes, in an order shuffled by ``seed``."""
    n_none = math.ceil(NONE_SHARE * n_events)
    kinds = [("none", "CO2" if i % 4 == 3 else "CH4") for i in range(n_none)]
    for i in range(n_events - n_none):
        kind = SOURCED_KINDS[i % len(SOURCED_KINDS)]
        kinds.append((kind, "CO2" if kind == "co2_power_plant" else "CH4"))
    order = np.random.default_rng([seed, n_events]).permutation(n_events)
    return [kinds[i] for i in order]


def set_scene(n_events: int, seed: int, index: int, artefacts: bool = True) -> Scene:
    """Event ``index`` of the set of ``n_events`` events of ``seed`` (:func:`validation_set`),
    generated alone: its class from :func:`scene_kinds`, drawn with ``default_rng([seed, index])``."""
    kind, gas = scene_kinds(n_events, seed)[index]
    return generate_scene(np.random.default_rng([seed, index]), kind, gas, index=index, artefacts=artefacts)


def validation_set(n_events: int = 60, seed: int = 0, artefacts: bool = True) -> list[Scene]:
    """``n_events`` events (:func:`scene_kinds`), event ``i`` drawn with ``default_rng([seed, i])``
    (:func:`set_scene`); ``artefacts=False``: the same events without retrieval artefacts."""
    return [set_scene(n_events, seed, i, artefacts) for i in range(n_events)]
