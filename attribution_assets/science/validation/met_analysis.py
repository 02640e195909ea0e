"""The met analysis a validation event hands to the inversion: the true wind seen through an analysis
error.

For each overpass the true transport wind is the synoptic wind at the overpass time
(:class:`.meander.SynopticWind`); the analysis reports it with an independent error of
``ANALYSIS_SPEED_SD_M_S`` (1 m s-1) in speed and ``ANALYSIS_DIRECTION_SD_RAD`` (15 degrees) in
direction, and says so: the reported 1-sigma uncertainties are those two numbers, the order of
reanalysis 10 m wind errors at a point (the package's met extraction,
:mod:`attribution_assets.science.met.wind`, uses the SRON model, 50 % of the speed up to 3 m s-1 and
1.5 m s-1 above, and floors the direction sd at 10 degrees; Varon et al. 2018, AMT 11, 5673, show
that this error dominates single-plume rate errors). Errors are independent between overpasses
(hours apart). The meander and gusts of :mod:`.meander` come on top of this
error and are not in the reported uncertainty: they are what a snapshot of a real plume sees.

The stability index is the true one (which sets the puff spread) with an error of sd 0.5 class.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from attribution_assets.science.met.wind import OverpassWind

ANALYSIS_SPEED_SD_M_S = 1.0
"""sd of the analysis speed error, and the reported speed uncertainty (m s-1)."""
ANALYSIS_DIRECTION_SD_RAD = math.radians(15.0)
"""sd of the analysis direction error, and the reported direction uncertainty (rad; 0.26)."""
ANALYSIS_STABILITY_SD = 0.5
"""sd of the analysis stability-index error (classes)."""
MIN_ANALYSED_SPEED_M_S = 0.5
"""Smallest wind speed (m s-1) an analysis reports."""


def analysed_wind(
    rng: np.random.Generator,
    true_u_m_s: float,
    true_v_m_s: float,
    true_stability_index: float,
    time: datetime,
    surface_pressure_pa: float,
    pblh_m: float = 1000.0,
) -> OverpassWind:
    """The met prior of one overpass: the true wind (m s-1) with a speed error N(0, 1 m s-1) (the
    analysed speed floored at 0.5 m s-1), a direction error N(0, 15 deg) and a stability error
    N(0, 0.5 class) (clipped to [0, 5]); reported uncertainties 1 m s-1 and 0.26 rad."""
    speed = max(math.hypot(true_u_m_s, true_v_m_s) + ANALYSIS_SPEED_SD_M_S * rng.standard_normal(),
                MIN_ANALYSED_SPEED_M_S)
    direction = math.atan2(true_v_m_s, true_u_m_s) + ANALYSIS_DIRECTION_SD_RAD * rng.standard_normal()
    stability = float(np.clip(true_stability_index + ANALYSIS_STABILITY_SD * rng.standard_normal(), 0.0, 5.0))
    return OverpassWind(
        time=time,
        u_m_s=speed * math.cos(direction),
        v_m_s=speed * math.sin(direction),
        speed_sd_m_s=ANALYSIS_SPEED_SD_M_S,
        direction_sd_rad=ANALYSIS_DIRECTION_SD_RAD,
        stability_index=stability,
        pblh_m=pblh_m,
        surface_pressure_pa=surface_pressure_pa,
        source="validation analysis",
    )
