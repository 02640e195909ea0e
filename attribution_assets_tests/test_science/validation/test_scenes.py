"""Validation scenes: classes, instruments, determinism, what the inversion receives."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion.settings import InversionSettings
from attribution_assets.science.validation import KINDS, generate_scene, scene_kinds, validation_set
from attribution_assets.science.validation.instruments import (
    ALBEDO_INSTRUMENTS,
    ALBEDO_RETRIEVAL_SD,
    GAS,
    UNITS,
)
from attribution_assets.science.validation.met_analysis import (
    ANALYSIS_DIRECTION_SD_RAD,
    ANALYSIS_SPEED_SD_M_S,
)
from attribution_assets.science.validation.scenes import KG_H_PER_MT_YR, draw_rate_kg_h


@pytest.fixture(scope="module")
def scenes():
    return validation_set()


def test_the_default_set_mixes_classes_instruments_and_gases(scenes) -> None:
    assert len(scenes) >= 40
    kinds = Counter(s.truth.kind for s in scenes)
    assert set(kinds) == set(KINDS)
    assert kinds["none"] / len(scenes) >= 0.30
    assert {len(s.blocks) for s in scenes} == {1, 2, 3}
    assert {s.gas for s in scenes} == {"CH4", "CO2"}
    assert {s.gas for s in scenes if s.truth.kind == "none"} == {"CH4", "CO2"}
    assert {name for s in scenes for name in s.instruments} == {"EMIT", "GHGSAT", "TROPOMI", "OCO2"}


def test_rates_respect_the_class_boundaries(scenes) -> None:
    for s in scenes:
        q, kind = s.truth.rate_kg_h, s.truth.kind
        assert {"none": q == 0.0, "weak": 0.0 < q < 300.0, "medium": 300.0 <= q <= 2000.0,
                "strong": q > 2000.0,
                "co2_power_plant": 0.5 * KG_H_PER_MT_YR <= q <= 5.0 * KG_H_PER_MT_YR}[kind], (kind, q)
        if kind in ("weak", "medium", "strong"):
            assert s.gas == "CH4" and "OCO2" not in s.instruments
        if kind == "co2_power_plant":
            assert s.gas == "CO2" and s.instruments == ("OCO2",)
    assert abs(KG_H_PER_MT_YR - 114_077) < 1


def test_class_rates_fill_their_ranges() -> None:
    rng = np.random.default_rng(0)
    bounds = {"weak": (80.0, 300.0), "medium": (300.0, 2000.0), "strong": (2000.0, 25000.0),
              "co2_power_plant": (0.5 * 114_077, 5.0 * 114_077)}
    for kind, (lo, hi) in bounds.items():
        q = np.array([draw_rate_kg_h(rng, kind) for _ in range(3000)])
        assert lo <= q.min() < lo * 1.01 and hi * 0.99 < q.max() <= hi, kind
        assert np.median(q) == pytest.approx(math.sqrt(lo * hi), rel=0.05)  # log-uniform
    assert draw_rate_kg_h(rng, "none") == 0.0


def test_blocks_are_consistent_with_the_winds_and_the_gas(scenes) -> None:
    for s in scenes:
        assert sorted(b.overpass for b in s.blocks) == list(range(len(s.winds)))
        assert [w.time for w in s.winds] == sorted(w.time for w in s.winds)
        for block, name in zip(s.blocks, s.instruments, strict=True):
            assert isinstance(block, ObservationBlock) and block.instrument == name
            assert block.gas == GAS[name] == s.gas and block.units == UNITS[name]
            assert np.all(np.isfinite(block.y)) and np.all(block.sigma > 0)
            np.testing.assert_allclose(block.weights.sum(axis=1), 1.0)
        for wind in s.winds:
            assert wind.speed_sd_m_s == ANALYSIS_SPEED_SD_M_S
            assert wind.direction_sd_rad == ANALYSIS_DIRECTION_SD_RAD


def test_met_priors_are_the_true_winds_with_the_analysis_error(scenes) -> None:
    speed, direction = [], []
    for s in scenes:
        for wind, u, v in zip(s.winds, s.truth.wind_u_m_s, s.truth.wind_v_m_s, strict=True):
            speed.append(wind.speed_m_s - math.hypot(u, v))
            direction.append(math.remainder(wind.direction_to_rad - math.atan2(v, u), 2 * math.pi))
    assert len(speed) > 80
    assert np.std(speed) == pytest.approx(ANALYSIS_SPEED_SD_M_S, rel=0.25)
    assert np.std(direction) == pytest.approx(ANALYSIS_DIRECTION_SD_RAD, rel=0.25)


def test_sources_are_offset_from_the_alert_as_the_position_prior_says(scenes) -> None:
    offsets = np.array([[s.truth.source_x_m, s.truth.source_y_m] for s in scenes]).ravel()
    assert np.std(offsets) == pytest.approx(InversionSettings().position_sd_m, rel=0.25)
    assert len(set(offsets)) == offsets.size


def test_observations_add_up_to_what_the_inversion_sees(scenes) -> None:
    for s in scenes[:20]:
        for obs in s.observations:
            noise = (obs.block.y - obs.background - obs.artefact.values - obs.plume) / obs.block.sigma
            assert np.std(noise) == pytest.approx(1.0, abs=0.5 if noise.size < 100 else 0.1)


def test_a_scene_without_a_source_has_no_plume_term(scenes) -> None:
    none = [s for s in scenes if s.truth.kind == "none"]
    assert none and all(not np.any(obs.plume) for s in none for obs in s.observations)
    sourced = [s for s in scenes if s.truth.kind != "none"]
    assert all(max(obs.plume.max() for obs in s.observations) > 0.0 for s in sourced)
    strong = [s for s in scenes if s.truth.kind == "strong" and "GHGSAT" in s.instruments]
    for s in strong:  # a strong source stands far above the GHGSat noise
        obs = s.observations[s.instruments.index("GHGSAT")]
        assert obs.plume.max() > 10.0 * obs.block.sigma[0]


def test_each_instrument_sees_its_own_overpass_and_wind(scenes) -> None:
    multi = [s for s in scenes if len(s.instruments) > 1]
    assert multi
    for s in multi:
        hours = s.truth.overpass_hours
        assert list(hours) == sorted(hours) and len(set(hours)) == len(hours)
        assert hours[0] >= 0.0 and hours[-1] <= 4.0
        directions = [math.atan2(v, u) for u, v in zip(s.truth.wind_u_m_s, s.truth.wind_v_m_s, strict=True)]
        assert len(set(directions)) == len(directions)  # the synoptic wind veers between overpasses
        assert all(1.0 <= h <= 8.0 for h in s.truth.release_hours)


def test_scenes_are_deterministic_for_a_seed() -> None:
    a, b, c = validation_set(6, seed=3), validation_set(6, seed=3), validation_set(6, seed=4)
    for x, y in zip(a, b, strict=True):
        assert x.truth == y.truth and x.winds == y.winds
        for bx, by in zip(x.blocks, y.blocks, strict=True):
            np.testing.assert_array_equal(bx.y, by.y)
            np.testing.assert_array_equal(bx.points_xy_m, by.points_xy_m)
    assert [x.truth for x in a] != [x.truth for x in c]
    assert scene_kinds(60, 0) == scene_kinds(60, 0) != scene_kinds(60, 1)


def test_switching_artefacts_off_changes_only_the_artefacts() -> None:
    with_art, without = validation_set(5, seed=7), validation_set(5, seed=7, artefacts=False)
    for x, y in zip(with_art, without, strict=True):
        assert x.truth == y.truth
        for ox, oy in zip(x.observations, y.observations, strict=True):
            assert not np.any(oy.artefact.values) and np.any(ox.artefact.values)
            np.testing.assert_allclose(ox.block.y - ox.artefact.values, oy.block.y, atol=1e-9)


def test_ghgsat_and_tropomi_report_the_albedo_their_artefact_follows(scenes) -> None:
    """The retrieved albedo is the artefact's albedo plus white retrieval error of
    ``ALBEDO_RETRIEVAL_SD``; EMIT and OCO-2 report none, nor does a block without artefacts."""
    seen = set()
    for s in scenes:
        for obs in s.observations:
            if obs.block.instrument not in ALBEDO_INSTRUMENTS:
                assert obs.block.albedo is None
                continue
            seen.add(obs.block.instrument)
            error = obs.block.albedo - obs.artefact.surface
            assert np.std(error) == pytest.approx(ALBEDO_RETRIEVAL_SD, rel=0.5 if error.size < 100 else 0.1)
    assert seen == set(ALBEDO_INSTRUMENTS)
    assert all(b.albedo is None for s in validation_set(5, seed=7, artefacts=False) for b in s.blocks)


def test_unknown_or_inconsistent_classes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown class"):
        generate_scene(np.random.default_rng(0), "huge")
    with pytest.raises(ValueError, match="CH4 class"):
        generate_scene(np.random.default_rng(0), "weak", gas="CO2")
    assert generate_scene(np.random.default_rng(0), "none", gas="CO2").instruments == ("OCO2",)
