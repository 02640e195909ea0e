"""Simulated events with a known source, drawn from the inversion's own prior, for validation.

Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788): if the truth is drawn from the
prior and the data from the model, an exact posterior's 90 % intervals contain the truth in 90 % of
events. Each event here has an EMIT-like fine imager (60 m pixels, ppm m) at overpass 0 and a
TROPOMI-like coarse grid (5.5 km pixels with 4 x 4 quadrature points, ppb) at overpass 1; the
emission rate, source position, per-overpass wind speed and direction and stability are drawn from
the priors of :class:`~attribution_assets.science.inversion.settings.InversionSettings` through the model's
own transforms, backgrounds are fixed and the noise is as reported (inflation 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import jax.numpy as jnp
import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock, predict_block
from attribution_assets.science.inversion.model import source_rate_kg_h, unpack
from attribution_assets.science.inversion.problem import prepare
from attribution_assets.science.inversion.settings import InversionSettings
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import (
    KG_M2_PER_PPM_M_CH4,
    STANDARD_PRESSURE_PA,
    kg_h_to_kg_s,
    kg_m2_per_ppb,
)

EMIT_PPM_M_PER_KG_M2 = 1.0 / KG_M2_PER_PPM_M_CH4
TROPOMI_PPB_PER_KG_M2 = 1.0 / float(kg_m2_per_ppb(STANDARD_PRESSURE_PA, "CH4"))


@dataclass(frozen=True)
class SimulatedEvent:
    """Observation blocks, met priors and the true parameters (physical units) of one event."""

    blocks: list[ObservationBlock]
    winds: list[OverpassWind]
    truth: dict[str, float | np.ndarray]


def grid_block(
    instrument: str, units: str, n: int, pitch_m: float, n_quad: int, k: float, noise: float,
    overpass: int, y: np.ndarray | None = None,
) -> ObservationBlock:
    """A square ``n x n`` grid of pixels of ``pitch_m`` (m) centred on the origin, each averaged over
    ``n_quad`` (a square number) equally weighted points, with constant noise and conversion ``k``;
    pixel ``i`` is row ``i // n`` (y) and column ``i % n`` (x) (``grid_index``)."""
    centres = (np.arange(n) - (n - 1) / 2) * pitch_m
    xx, yy = np.meshgrid(centres, centres)
    m = int(round(math.sqrt(n_quad)))
    offsets = ((np.arange(m) + 0.5) / m - 0.5) * pitch_m
    ox, oy = np.meshgrid(offsets, offsets)
    points = np.stack([xx.ravel(), yy.ravel()], -1)[:, None, :] + np.stack([ox.ravel(), oy.ravel()], -1)[None]
    size = points.shape[0]
    return ObservationBlock(
        instrument=instrument, gas="CH4", units=units, y=np.zeros(size) if y is None else y,
        sigma=np.full(size, noise), points_xy_m=points, weights=np.full((size, m * m), 1.0 / (m * m)),
        kg_m2_to_obs=np.full(size, k), overpass=overpass, lon=np.zeros(size), lat=np.zeros(size),
        grid_index=np.stack(np.divmod(np.arange(size), n), axis=-1),
    )


def met_prior(u_m_s: float, v_m_s: float, speed_sd_m_s: float = 1.0, direction_sd_rad: float = 0.25,
              stability_index: float = 3.0) -> OverpassWind:
    """A met prior for one overpass (the wind the met analysis reports, with its uncertainty)."""
    return OverpassWind(time=datetime(2025, 6, 1, 18), u_m_s=u_m_s, v_m_s=v_m_s, speed_sd_m_s=speed_sd_m_s,
                        direction_sd_rad=direction_sd_rad, stability_index=stability_index, pblh_m=1000.0,
                        surface_pressure_pa=STANDARD_PRESSURE_PA, source="ERA5")


def simulate_event(
    rng: np.random.Generator,
    settings: InversionSettings,
    emit_pixels: int = 30,
    tropomi_pixels: int = 5,
    emit_noise_ppm_m: float = 300.0,
    tropomi_noise_ppb: float = 10.0,
) -> SimulatedEvent:
    """One event: truth drawn from the prior of ``settings``, observations from the forward model."""
    winds = [met_prior(3.0, 1.8), met_prior(3.5, 1.0)]
    backgrounds = (0.0, 1880.0)
    shapes = [
        ("EMIT", "ppm m", emit_pixels, 60.0, 1, EMIT_PPM_M_PER_KG_M2, emit_noise_ppm_m, 0),
        ("TROPOMI", "ppb", tropomi_pixels, 5500.0, 16, TROPOMI_PPB_PER_KG_M2, tropomi_noise_ppb, 1),
    ]
    template = [grid_block(*shape) for shape in shapes]
    data, config = prepare(template, winds, "CH4", settings)
    lay = config.layout()
    z = rng.standard_normal(config.dim)
    z[lay["background"]] = 0.0
    if "inflation" in lay:
        z[lay["inflation"]] = 0.0
    truth = unpack(z, data, config)
    truth["emission_rate_if_present_kg_h"] = float(
        source_rate_kg_h(truth["plume_rate_kg_h"], rng.standard_normal(), data))
    truth["background"] = np.asarray(backgrounds)
    return SimulatedEvent(blocks=model_observations(template, truth, rng), winds=winds, truth=truth)


def model_observations(
    blocks: Sequence[ObservationBlock], truth: Mapping[str, Any], rng: np.random.Generator
) -> list[ObservationBlock]:
    """``blocks`` with the observations of the model at ``truth`` (the physical parameters of
    :func:`~attribution_assets.science.inversion.model.unpack`, with one ``background`` per block in
    its units): each block's background plus the plume of its overpass plus noise of the reported
    sigma (inflation 1), the noise drawn from ``rng`` block by block."""
    out = []
    for b, block in enumerate(blocks):
        o = block.overpass
        clean = np.asarray(predict_block(
            jnp.asarray(block.points_xy_m), jnp.asarray(block.weights), jnp.asarray(block.kg_m2_to_obs),
            jnp.asarray([truth["plume_origin_x_m"][o], truth["plume_origin_y_m"][o]]),
            kg_h_to_kg_s(truth["plume_rate_kg_h"]), truth["wind_u_m_s"][o],
            truth["wind_v_m_s"][o], truth["stability_index"][o], sigma_floor_m=block.sigma_floor_m,
            bend_per_m=truth["plume_bend_per_m"][o]), float)
        y = truth["background"][b] + clean + block.sigma * rng.standard_normal(block.size)
        out.append(replace(block, y=y))
    return out
