"""True wind of the validation scenes (meander, gusts) and the met analysis the inversion gets."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest

from attribution_assets.science.validation.meander import (
    STEADY,
    SynopticWind,
    Turbulence,
    ar1,
    meandering_wind,
)
from attribution_assets.science.validation.met_analysis import (
    ANALYSIS_DIRECTION_SD_RAD,
    ANALYSIS_SPEED_SD_M_S,
    analysed_wind,
)

DAY_S = 86400.0


def test_a_steady_wind_moves_air_in_a_straight_line() -> None:
    synoptic = SynopticWind(4.0, math.radians(60))
    wind = meandering_wind(np.random.default_rng(0), synoptic, STEADY, -3600.0, 0.0)
    t = np.array([-3600.0, -1234.5, 0.0])
    d = wind.displacement_m(t)
    np.testing.assert_allclose(d[:, 0], 4.0 * math.cos(math.radians(60)) * (t + 3600.0), atol=1e-9)
    np.testing.assert_allclose(d[:, 1], 4.0 * math.sin(math.radians(60)) * (t + 3600.0), atol=1e-9)
    np.testing.assert_allclose(wind.path_length_m(t), 4.0 * (t + 3600.0), atol=1e-9)
    assert wind.mean_speed_m_s(-3000.0, -100.0) == pytest.approx(4.0)


def test_synoptic_trend_and_veer() -> None:
    synoptic = SynopticWind(4.0, 1.0, t_ref_s=100.0, speed_trend_per_s=1e-4, veer_rad_s=2e-5)
    assert synoptic.speed_at(100.0 + 5000.0) == pytest.approx(4.0 * 1.5)
    assert synoptic.speed_at(100.0 - 1e5) == pytest.approx(4.0 * 0.3)  # floored
    assert synoptic.direction_at(100.0 + 5000.0) == pytest.approx(1.1)
    u, v = synoptic.vector_at(100.0)
    assert (u, v) == pytest.approx((4.0 * math.cos(1.0), 4.0 * math.sin(1.0)))


def test_ar1_has_the_requested_sd_and_correlation() -> None:
    x = ar1(np.random.default_rng(1), 200_000, 2.0, 300.0, 10.0)
    assert np.std(x) == pytest.approx(2.0, rel=0.03)
    assert np.corrcoef(x[:-1], x[1:])[0, 1] == pytest.approx(math.exp(-10.0 / 300.0), abs=0.005)


def test_meander_and_gust_statistics() -> None:
    turbulence = Turbulence(direction_sd_rad=math.radians(20.0), speed_log_sd=0.25)
    synoptic = SynopticWind(5.0, 0.5)
    wind = meandering_wind(np.random.default_rng(2), synoptic, turbulence, 0.0, 20 * DAY_S)
    speed = np.hypot(wind.u_m_s, wind.v_m_s)
    deviation = np.angle(np.exp(1j * (np.arctan2(wind.v_m_s, wind.u_m_s) - 0.5)))
    assert np.std(deviation) == pytest.approx(math.radians(20.0), rel=0.1)
    lag = int(600.0 / wind.dt_s)
    increments = deviation[lag:] - deviation[:-lag]
    assert np.std(increments) == pytest.approx(turbulence.direction_increment_sd_rad(600.0), rel=0.1)
    assert math.degrees(turbulence.direction_increment_sd_rad(600.0)) == pytest.approx(17.7, abs=0.1)
    assert np.mean(speed) == pytest.approx(5.0, rel=0.02)  # gusts keep the mean speed
    assert np.std(np.log(speed)) == pytest.approx(0.25, rel=0.05)
    assert np.std(speed) / np.mean(speed) == pytest.approx(0.25, rel=0.1)


def test_met_analysis_errors_have_the_reported_sizes() -> None:
    rng = np.random.default_rng(3)
    u0, v0 = 4.0 * math.cos(2.0), 4.0 * math.sin(2.0)
    winds = [analysed_wind(rng, u0, v0, 2.5, datetime(2025, 6, 1), 95_000.0) for _ in range(4000)]
    speed_error = np.array([w.speed_m_s for w in winds]) - 4.0
    direction_error = np.angle(np.exp(1j * (np.array([w.direction_to_rad for w in winds]) - 2.0)))
    stability_error = np.array([w.stability_index for w in winds]) - 2.5
    assert np.std(speed_error) == pytest.approx(1.0, rel=0.05)
    assert abs(np.mean(speed_error)) < 0.05
    assert np.std(direction_error) == pytest.approx(math.radians(15.0), rel=0.05)
    assert abs(np.mean(direction_error)) < 0.01
    assert np.std(stability_error) == pytest.approx(0.5, rel=0.05)
    assert {w.speed_sd_m_s for w in winds} == {ANALYSIS_SPEED_SD_M_S} == {1.0}
    assert {w.direction_sd_rad for w in winds} == {ANALYSIS_DIRECTION_SD_RAD}
    assert abs(ANALYSIS_DIRECTION_SD_RAD - 0.26) < 0.005
    assert {w.surface_pressure_pa for w in winds} == {95_000.0}


def test_met_analysis_never_reports_a_calm_or_an_impossible_stability() -> None:
    rng = np.random.default_rng(4)
    winds = [analysed_wind(rng, 0.3, 0.0, 4.9, datetime(2025, 6, 1), 101_325.0) for _ in range(500)]
    assert min(w.speed_m_s for w in winds) >= 0.5 - 1e-12
    assert max(w.stability_index for w in winds) <= 5.0
