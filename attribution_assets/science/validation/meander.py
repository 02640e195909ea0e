"""The true wind at the source: a slowly changing synoptic wind with turbulent meander and gusts.

The inversion's plume model assumes one steady wind per overpass. The validation scenes transport
their puffs (:mod:`.puffs`) in a wind that changes every ``dt_s`` (10 s):

- **synoptic wind**: speed and direction at a reference time, with a linear speed trend and a
  constant veer (rad s-1) between overpasses a few hours apart;
- **direction meander**: an Ornstein-Uhlenbeck process (a random walk pulled back to the synoptic
  direction with reversion time ``direction_time_s``, 20 min) whose stationary sd is 10-25 degrees
  in the scenes: over 10 min its increments have sd ``sd sqrt(2 (1 - exp(-600 / 1200)))`` = 0.89 sd,
  i.e. 9-22 degrees per 10 min. Lateral wind-direction fluctuations of 7.5-22.5 degrees are the range
  of sigma_theta of Pasquill classes D to A in the sigma-theta stability method (US EPA 2000,
  *Meteorological Monitoring Guidance for Regulatory Modeling Applications*, EPA-454/R-99-005);
- **speed gusts**: the log of the speed is an AR(1)/Ornstein-Uhlenbeck process with sd 0.2-0.3 in the
  scenes (20-30 % speed fluctuations) and correlation time ``speed_time_s`` (5 min), scaled so the
  mean speed equals the synoptic speed.

The synoptic wind at an overpass is the event's true transport wind: the met analysis that the
inversion receives is that wind plus an analysis error (:mod:`.met_analysis`). The turbulent part is
what a plume snapshot sees and an hourly analysis cannot (Varon et al. 2018, AMT 11, 5673: the
wind error dominates single-plume rate errors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

WIND_STEP_S = 10.0
"""Time step (s) of the true wind series."""


@dataclass(frozen=True)
class SynopticWind:
    """The slowly varying mean wind: speed (m s-1) and direction the air moves to (rad, counter-clockwise
    from east) at ``t_ref_s``, a relative speed trend (s-1) and a veer (rad s-1)."""

    speed_m_s: float
    direction_rad: float
    t_ref_s: float = 0.0
    speed_trend_per_s: float = 0.0
    veer_rad_s: float = 0.0

    def speed_at(self, t_s: np.ndarray | float) -> np.ndarray:
        """Mean speed (m s-1) at times ``t_s``; the trend never takes it below 30 % of ``speed_m_s``."""
        factor = 1.0 + self.speed_trend_per_s * (np.asarray(t_s, float) - self.t_ref_s)
        return self.speed_m_s * np.maximum(factor, 0.3)

    def direction_at(self, t_s: np.ndarray | float) -> np.ndarray:
        """Mean direction (rad) at times ``t_s``."""
        return self.direction_rad + self.veer_rad_s * (np.asarray(t_s, float) - self.t_ref_s)

    def vector_at(self, t_s: float) -> tuple[float, float]:
        """Mean wind components ``(u, v)`` (m s-1) at time ``t_s``."""
        speed, direction = float(self.speed_at(t_s)), float(self.direction_at(t_s))
        return speed * math.cos(direction), speed * math.sin(direction)


@dataclass(frozen=True)
class Turbulence:
    """Meander and gusts about the synoptic wind: stationary sd of the direction deviation (rad) and
    its reversion time (s); sd of the log speed (1) and its correlation time (s)."""

    direction_sd_rad: float
    speed_log_sd: float
    direction_time_s: float = 1200.0
    speed_time_s: float = 300.0

    def direction_increment_sd_rad(self, lag_s: float) -> float:
        """sd (rad) of the change of direction over ``lag_s`` seconds (random-walk-like at short lags)."""
        return self.direction_sd_rad * math.sqrt(2.0 * (1.0 - math.exp(-lag_s / self.direction_time_s)))


STEADY = Turbulence(direction_sd_rad=0.0, speed_log_sd=0.0)
"""No meander and no gusts: the wind is the synoptic wind."""


@dataclass(frozen=True)
class WindSeries:
    """The true wind (m s-1) at the source every ``dt_s`` seconds from ``t0_s``; the velocity is taken
    constant over each step, so positions are exact integrals of the series."""

    t0_s: float
    dt_s: float
    u_m_s: np.ndarray
    v_m_s: np.ndarray

    def _cumulative(self, values: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        """Integral of the piecewise-constant ``values`` from ``t0_s`` to ``t_s`` (clipped to the series)."""
        nodes = np.concatenate([[0.0], np.cumsum(values) * self.dt_s])
        grid = self.t0_s + self.dt_s * np.arange(nodes.size)
        return np.interp(np.asarray(t_s, float), grid, nodes)

    def displacement_m(self, t_s: np.ndarray | float) -> np.ndarray:
        """Displacement ``(..., 2)`` (m) of an air parcel from ``t0_s`` to ``t_s``."""
        return np.stack([self._cumulative(self.u_m_s, t_s), self._cumulative(self.v_m_s, t_s)], axis=-1)

    def path_length_m(self, t_s: np.ndarray | float) -> np.ndarray:
        """Distance (m) an air parcel travels from ``t0_s`` to ``t_s`` (the integral of the speed)."""
        return self._cumulative(np.hypot(self.u_m_s, self.v_m_s), t_s)

    def mean_speed_m_s(self, t0_s: float, t1_s: float) -> float:
        """Mean speed (m s-1) between ``t0_s`` and ``t1_s``."""
        return float((self.path_length_m(t1_s) - self.path_length_m(t0_s)) / max(t1_s - t0_s, 1e-9))


def ar1(rng: np.random.Generator, n: int, sd: float, time_s: float, dt_s: float) -> np.ndarray:
    """``n`` steps of a stationary AR(1) process (the sampled Ornstein-Uhlenbeck process) with sd
    ``sd`` and correlation time ``time_s`` (lag-one correlation ``exp(-dt_s / time_s)``)."""
    phi = math.exp(-dt_s / time_s)
    xi = rng.standard_normal(n)
    if n == 0 or sd == 0.0:
        return np.zeros(n)
    first = sd * xi[0]
    rest, _ = lfilter([sd * math.sqrt(1.0 - phi**2)], [1.0, -phi], xi[1:], zi=[phi * first])
    return np.concatenate([[first], rest])


def meandering_wind(
    rng: np.random.Generator,
    synoptic: SynopticWind,
    turbulence: Turbulence,
    t0_s: float,
    t1_s: float,
    dt_s: float = WIND_STEP_S,
) -> WindSeries:
    """The true wind from ``t0_s`` to (at least) ``t1_s``: synoptic wind, direction meander and
    log-normal gusts with mean 1 (``exp(f - sd^2 / 2)``)."""
    n = int(math.ceil((t1_s - t0_s) / dt_s)) + 1
    t = t0_s + dt_s * (np.arange(n) + 0.5)
    direction = synoptic.direction_at(t) + ar1(
        rng, n, turbulence.direction_sd_rad, turbulence.direction_time_s, dt_s
    )
    log_gust = ar1(rng, n, turbulence.speed_log_sd, turbulence.speed_time_s, dt_s)
    speed = synoptic.speed_at(t) * np.exp(log_gust - 0.5 * turbulence.speed_log_sd**2)
    return WindSeries(t0_s=t0_s, dt_s=dt_s, u_m_s=speed * np.cos(direction), v_m_s=speed * np.sin(direction))
