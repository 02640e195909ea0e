"""Calibration over simulated events drawn from the prior (the fast version of benchmarks/validation.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from attribution_assets.science import inversion
from attribution_assets.science.inversion.simulation import simulate_event

pytestmark = pytest.mark.slow

EVENTS = 16
SETTINGS = inversion.InversionSettings(num_chains=2, num_warmup=150, num_samples=150, presence=False,
                                       escalate=False)


@pytest.fixture(scope="module")
def outcomes() -> list[tuple[float, float, float]]:
    """(truth, p05, p95) of the emission rate, kg/h, for each simulated event."""
    rows = []
    for seed in range(EVENTS):
        event = simulate_event(np.random.default_rng([7, seed]), SETTINGS, emit_pixels=20, tropomi_pixels=4)
        result = inversion.invert(event.blocks, event.winds, "CH4", SETTINGS)
        q = np.ravel(result.draws["emission_rate_kg_h"])
        rows.append((float(event.truth["emission_rate_if_present_kg_h"]), *np.percentile(q, [5, 95])))
    return rows


def test_simulated_truths_span_the_prior(outcomes) -> None:
    truths = np.array([t for t, _, _ in outcomes])
    assert truths.min() < 300.0 < 3000.0 < truths.max()  # weak and strong sources alike


def test_ninety_percent_intervals_cover_the_truth(outcomes) -> None:
    hits = sum(lo <= t <= hi for t, lo, hi in outcomes)
    # a calibrated 90 % interval: hits ~ Binomial(16, 0.9), at least 11 with probability 0.995
    assert stats.binom(EVENTS, 0.9).cdf(hits) > 0.005
    # and not by being uninformative: strong sources get intervals narrower than a factor 4
    strong = [hi / lo for t, lo, hi in outcomes if t > 2000.0]
    assert strong and np.median(strong) < 4.0
