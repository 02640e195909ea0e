"""EMIT plume detection on generated scenes: the rule of benchmarks/bench_detection_rates.py, few scenes."""

from __future__ import annotations

import numpy as np

from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.samples.simulate.emit import emit_plume_cube
from attribution_assets.science.detection.matched_filter import matched_filter
from attribution_assets.science.detection.plume_scan import emit_plume_candidates

K_HI = load_ch4_unit_absorption()
SHAPE = (640, 64)  # half the benchmark's 1280-line columns, a half-width strip: a few seconds in all
SEEDS = range(20_000, 20_004)  # disjoint from the benchmark's tuning (0-39) and reported (10 000+) seeds


def _maps(seed: int, rate_kg_h: float):
    cube = emit_plume_cube(np.random.default_rng(seed), shape=SHAPE, rate_kg_h=rate_kg_h)
    res = matched_filter(cube.radiance, cube.wavelength_nm, cube.fwhm_nm, K_HI)
    return cube, res


def test_scene_noise_matches_emit():
    _, res = _maps(SEEDS[0], 0.0)
    assert 300.0 < np.nanmedian(res.sd_ppm_m) < 550.0  # real EMIT scenes: ~400 ppm·m (science ref §6)


def test_one_tonne_plumes_are_found_at_their_source():
    nearest = []
    for seed in SEEDS:
        cube, res = _maps(seed, 1000.0)
        found = emit_plume_candidates(res.enhancement_ppm_m, res.sd_ppm_m)
        assert len(found), seed
        nearest.append(np.hypot(found["row"] - cube.source_px[0], found["col"] - cube.source_px[1]).min())
    # at the source, except where a plume leaves the 64-column strip soon after it (seed 20 001: the
    # candidate then sits ~15 px along the plume, see emit_plume_candidates)
    assert np.median(nearest) <= 2.0 and max(nearest) <= 16.0, nearest


def test_null_scene_alarm_rate_stays_near_the_benchmark():
    # The benchmark measures 0/100 null scenes alarming; even at the 5 % target, 2 or more alarms in 6
    # scenes has a probability of ~3 %.
    alarms = 0
    for seed in range(SEEDS[0], SEEDS[0] + 6):
        _, res = _maps(seed + 500_000, 0.0)
        alarms += len(emit_plume_candidates(res.enhancement_ppm_m, res.sd_ppm_m)) > 0
    assert alarms <= 1
