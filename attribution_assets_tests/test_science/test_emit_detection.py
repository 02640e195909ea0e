"""EMIT plume detection on generated scenes: the rule of benchmarks/bench_detection_rates.py, few scenes."""

from __future__ import annotations

import numpy as np

from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.samples.scenes import emit_plume_cube
from attribution_assets.science.matched_filter import matched_filter
from attribution_assets.science.plume_mask import plume_mask

K_HI = load_ch4_unit_absorption()
RULE = {"threshold_sigma": 5.0, "min_size_px": 5, "line_px": (3.0, 0.7)}
SEEDS = range(20_000, 20_004)  # disjoint from the benchmark's tuning (0-39) and reported (10 000+) seeds


def _maps(seed: int, rate_kg_h: float):
    cube = emit_plume_cube(np.random.default_rng(seed), shape=(160, 160), rate_kg_h=rate_kg_h)
    res = matched_filter(cube.radiance, cube.wavelength_nm, cube.fwhm_nm, K_HI)
    return cube, res


def test_scene_noise_matches_emit():
    _, res = _maps(SEEDS[0], 0.0)
    assert 300.0 < np.nanmedian(res.sd_ppm_m) < 550.0  # real EMIT scenes: ~400 ppm·m (science ref §6)


def test_two_tonne_plumes_are_detected_at_their_source():
    for seed in SEEDS:
        cube, res = _maps(seed, 2000.0)
        found = plume_mask(res.enhancement_ppm_m, res.sd_ppm_m, **RULE)
        rows, cols = np.nonzero(found.labels)
        assert rows.size, seed
        assert np.hypot(rows - cube.source_px[0], cols - cube.source_px[1]).min() <= 5.0, seed


def test_null_scene_alarm_rate_stays_near_the_benchmark():
    # The benchmark measures 14/100 false alarms (carbonate patches with a 2340 nm band mimic CH4); with
    # that rate, 4 or more alarms in 8 scenes has a probability of ~1.4 %.
    alarms = 0
    for seed in range(SEEDS[0], SEEDS[0] + 8):
        _, res = _maps(seed + 500_000, 0.0)
        alarms += plume_mask(res.enhancement_ppm_m, res.sd_ppm_m, **RULE).detected
    assert alarms <= 3
