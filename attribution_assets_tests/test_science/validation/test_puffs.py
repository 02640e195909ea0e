"""Gaussian-puff plume of the validation scenes: mass conservation, mass flux, puff growth, footprints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attribution_assets.science.validation.footprints import Footprints, pixel_grid
from attribution_assets.science.validation.meander import (
    STEADY,
    SynopticWind,
    Turbulence,
    WindSeries,
    meandering_wind,
)
from attribution_assets.science.validation.puffs import (
    MIN_RELEASE_STEP_S,
    PUFF_OVERLAP,
    SLADE_PUFF_SIGMA,
    SOURCE_SIGMA_M,
    PuffTrain,
    puff_sigma_m,
    puff_train,
)

HOUR_S = 3600.0


def steady_train(speed: float, direction: float, rate_kg_s: float = 1.0, hours: float = 1.0,
                 stability: float = 3.0) -> PuffTrain:
    synoptic = SynopticWind(speed, direction)
    wind = meandering_wind(np.random.default_rng(0), synoptic, STEADY, -hours * HOUR_S, 0.0)
    return puff_train(np.array([30.0, -20.0]), rate_kg_s, wind, 0.0, hours * HOUR_S, stability)


def turbulent_train(seed: int = 1, hours: float = 1.5) -> PuffTrain:
    rng = np.random.default_rng(seed)
    wind = meandering_wind(rng, SynopticWind(3.0, 0.7, veer_rad_s=1e-5), Turbulence(math.radians(25), 0.3),
                           -hours * HOUR_S, 0.0)
    return puff_train(np.zeros(2), 2.0, wind, 0.0, hours * HOUR_S, 1.5)


def test_footprint_means_over_a_tiling_hold_all_the_released_mass() -> None:
    train = turbulent_train()
    assert train.total_mass_kg == pytest.approx(2.0 * 1.5 * HOUR_S, rel=1e-12)
    reach = np.max(np.hypot(train.x_m, train.y_m) + 8 * train.sigma_m)
    n = int(np.ceil(2 * reach / 400.0))
    tiles = pixel_grid(np.zeros(2), n, n, 400.0, 400.0, along_rad=0.4)  # rotated tiling of the domain
    mass = np.sum(train.footprint_mean_kg_m2(tiles)) * tiles.area_m2
    assert mass == pytest.approx(2.0 * 1.5 * HOUR_S, rel=1e-9)


def test_point_columns_integrate_to_the_released_mass() -> None:
    train = steady_train(2.0, 0.0, hours=1.0)  # puffs along +x up to 7.2 km, sigma < 250 m
    x, y = np.meshgrid(np.arange(-300.0, 8000.0, 10.0), np.arange(-1000.0, 1000.0, 10.0))
    column = train.column_kg_m2(np.stack([x, y], axis=-1))
    assert np.sum(column) * 100.0 == pytest.approx(HOUR_S, rel=1e-3)


@pytest.mark.parametrize("speed", [1.5, 4.0, 7.0])
def test_crosswind_integral_is_the_rate_over_the_wind_speed(speed: float) -> None:
    direction = math.radians(30.0)
    train = steady_train(speed, direction, rate_kg_s=0.5)
    ex, ey = math.cos(direction), math.sin(direction)
    s = np.linspace(-4000.0, 4000.0, 16001)
    for downwind in (60.0, 300.0, 1500.0, 0.8 * speed * HOUR_S):
        points = np.stack([30.0 + downwind * ex - s * ey, -20.0 + downwind * ey + s * ex], axis=-1)
        flux = np.trapezoid(train.column_kg_m2(points), s) * speed
        assert flux == pytest.approx(0.5, rel=0.01), downwind
    beyond = 1.3 * speed * HOUR_S  # no puff has got that far yet
    points = np.stack([30.0 + beyond * ex - s * ey, -20.0 + beyond * ey + s * ex], axis=-1)
    assert np.trapezoid(train.column_kg_m2(points), s) * speed < 1e-6


def test_puff_sigma_grows_with_distance_and_instability() -> None:
    d = np.geomspace(1.0, 1e5, 200)
    for s in np.linspace(0.0, 5.0, 11):
        sigma = puff_sigma_m(d, s)
        assert np.all(np.diff(sigma) > 0.0)
        assert puff_sigma_m(0.0, s) == pytest.approx(SOURCE_SIGMA_M)
    by_class = np.array([puff_sigma_m(1000.0, s) for s in range(6)])
    assert np.all(np.diff(by_class) < 0.0)  # A spreads most, F least
    a, b = SLADE_PUFF_SIGMA[3]
    assert puff_sigma_m(1000.0, 3.0) == pytest.approx(math.hypot(SOURCE_SIGMA_M, a * 1000.0**b))
    assert puff_sigma_m(1000.0, 3.5) == pytest.approx(
        math.hypot(SOURCE_SIGMA_M, 0.5 * (0.06 + 0.04) * 1000.0**0.92)
    )


def test_puff_sigma_follows_the_path_travelled_not_the_distance_from_the_source() -> None:
    # a wind that reverses after 10 min brings the puffs back: they are wide but near the source
    u = np.concatenate([np.full(60, 3.0), np.full(60, -3.0)])
    wind = WindSeries(t0_s=-1200.0, dt_s=10.0, u_m_s=u, v_m_s=np.zeros(120))
    train = puff_train(np.zeros(2), 1.0, wind, 0.0, 1200.0, 3.0)
    oldest = np.argmax(train.sigma_m)
    assert abs(train.x_m[oldest]) < 30.0
    assert train.sigma_m[oldest] == pytest.approx(float(puff_sigma_m(3600.0, 3.0)), rel=0.01)


def test_neighbouring_puffs_overlap() -> None:
    for speed in (1.5, 7.0):
        train = steady_train(speed, 0.0, hours=2.0)
        spacing = np.diff(train.x_m)  # puffs ordered from the youngest, downwind
        assert np.all(spacing > 0.0)
        bound = np.maximum(PUFF_OVERLAP * train.sigma_m[1:], speed * MIN_RELEASE_STEP_S)
        assert np.all(spacing <= bound * (1.0 + 1e-9))
        assert np.all(spacing < train.sigma_m[:-1])  # within one sigma of the younger puff


def test_a_zero_rate_has_no_plume() -> None:
    synoptic, turbulence = SynopticWind(3.0, 1.0), Turbulence(0.3, 0.25)
    wind = meandering_wind(np.random.default_rng(3), synoptic, turbulence, -HOUR_S, 0.0)
    train = puff_train(np.zeros(2), 0.0, wind, 0.0, HOUR_S, 2.0)
    assert train.mass_kg.size == 0 and train.total_mass_kg == 0.0
    assert not np.any(train.column_kg_m2(np.random.default_rng(0).uniform(-500, 500, (100, 2))))
    assert not np.any(train.footprint_mean_kg_m2(pixel_grid(np.zeros(2), 5, 5, 60.0, 60.0)))


def test_footprint_mean_is_the_area_mean_of_the_blurred_column() -> None:
    train = steady_train(3.0, 0.3, hours=0.2)
    box = Footprints(np.array([[400.0, 100.0], [150.0, 60.0]]), 40.0, 90.0, along_rad=1.1)
    # blur 0: the mean of the point column over a fine sub-grid of each box
    sub = (np.arange(200) + 0.5) / 200 - 0.5
    a, c = np.meshgrid(2 * box.half_along_m * sub, 2 * box.half_across_m * sub, indexing="ij")
    along, across = box.axes
    for centre, exact in zip(box.centres_xy_m, train.footprint_mean_kg_m2(box), strict=True):
        points = centre + a[..., None] * along + c[..., None] * across
        assert exact == pytest.approx(float(train.column_kg_m2(points).mean()), rel=1e-4)
    # a blur adds to every puff's variance: the same as a train of wider puffs seen without blur
    blurred = Footprints(box.centres_xy_m, 40.0, 90.0, 1.1, blur_m=25.0)
    wider = PuffTrain(train.x_m, train.y_m, np.hypot(train.sigma_m, 25.0), train.mass_kg)
    np.testing.assert_allclose(train.footprint_mean_kg_m2(blurred), wider.footprint_mean_kg_m2(box),
                               rtol=1e-12)


def test_a_puff_well_inside_a_footprint_contributes_its_mass_over_the_area() -> None:
    train = PuffTrain(np.array([5.0]), np.array([-3.0]), np.array([2.0]), np.array([7.0]))
    box = Footprints(np.zeros((1, 2)), 100.0, 50.0, along_rad=0.25)
    assert train.footprint_mean_kg_m2(box)[0] == pytest.approx(7.0 / box.area_m2, rel=1e-12)
    far = Footprints(np.array([[1000.0, 0.0]]), 100.0, 50.0)
    assert 0.0 <= train.footprint_mean_kg_m2(far)[0] < 1e-300
