"""Tests of the inventory attribution posterior (science.attribution)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attribution_assets.science.attribution import UNLISTED_ID, attribute_source, candidates_local_xy

PRIOR_SD_M = 300.0


def _draws(centre: tuple[float, float], sd_m: float, n: int = 4000, seed: int = 1) -> tuple[np.ndarray, ...]:
    """Posterior-like draws (chain, draw) around ``centre`` (m), mirrored so their mean is exact."""
    rng = np.random.default_rng(seed)
    half = rng.normal(0.0, sd_m, size=(n // 2, 2))
    pts = np.concatenate([half, -half]) + np.asarray(centre)
    return pts[:, 0].reshape(4, -1), pts[:, 1].reshape(4, -1)


def _prob(result, facility_id: str) -> float:
    return float(result.table.set_index("facility_id").loc[facility_id, "probability"])


THREE = np.array([[-200.0, -150.0], [800.0, 600.0], [-600.0, -1000.0]])
IDS = ["A", "B", "C"]


def test_draws_next_to_one_candidate_attribute_to_it() -> None:
    x, y = _draws((-180.0, -130.0), 40.0)
    result = attribute_source(x, y, THREE, facility_ids=IDS, position_prior_sd_m=PRIOR_SD_M)
    assert result.best_facility_id == "A"
    assert result.best_probability > 0.9
    assert result.table["facility_id"].iloc[0] == "A"
    assert result.n_draws == x.size
    row = result.table.set_index("facility_id").loc["A"]
    assert row["distance_m"] == pytest.approx(np.hypot(20.0, 20.0), abs=1e-6)


def test_midway_between_two_equal_candidates_splits_evenly() -> None:
    x, y = _draws((0.0, 0.0), 30.0)
    result = attribute_source(x, y, [[-100.0, 0.0], [100.0, 0.0]], facility_ids=["W", "E"],
                              position_prior_sd_m=PRIOR_SD_M)
    assert _prob(result, "W") == pytest.approx(_prob(result, "E"), rel=1e-9)
    assert _prob(result, "W") + _prob(result, "E") > 0.95


def test_draws_far_from_all_candidates_are_unlisted() -> None:
    x, y = _draws((2500.0, 2500.0), 50.0)
    result = attribute_source(x, y, THREE, facility_ids=IDS, position_prior_sd_m=PRIOR_SD_M)
    assert result.p_unlisted > 0.9
    assert result.table["facility_id"].iloc[0] == UNLISTED_ID


@pytest.mark.parametrize("centre", [(-180.0, -130.0), (0.0, 0.0), (400.0, 300.0), (2500.0, 2500.0)])
def test_probabilities_sum_to_one(centre: tuple[float, float]) -> None:
    x, y = _draws(centre, 60.0)
    result = attribute_source(x, y, THREE, facility_ids=IDS, position_prior_sd_m=PRIOR_SD_M,
                              location_sd_m=[100.0, 50.0, 3000.0])
    table = result.table
    assert table["probability"].sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(table["probability"]) <= 0), "rows are not sorted by decreasing probability"
    # Bayes: each probability is prior x marginal likelihood, normalised over the K + 1 hypotheses
    log_joint = np.log(table["prior"]) + table["log_marginal_likelihood"]
    expected = np.exp(log_joint - log_joint.max())
    np.testing.assert_allclose(table["probability"], expected / expected.sum(), rtol=1e-9, atol=1e-300)
    assert table["prior"].sum() == pytest.approx(1.0, abs=1e-12)


def _normal2_pdf(distance_m: float, sd_m: float) -> float:
    """Isotropic bivariate normal density (1/m2) at ``distance_m`` from its centre."""
    return math.exp(-0.5 * (distance_m / sd_m) ** 2) / (2.0 * math.pi * sd_m**2)


@pytest.mark.parametrize("prior_sd_m", [None, 300.0])
def test_point_mass_posterior_has_the_closed_form_probabilities(prior_sd_m: float | None) -> None:
    # Every draw at s = (0, 0): E_post[g(s) / p0(s)] = g(0) / p0(0), and p0(0) cancels, so
    # P(H_k) ∝ (1 - unlisted_prior) w_k / sum(w) N(c_k; 0, sd_k^2 I) and P(H_0) ∝ unlisted_prior / (2 h)^2.
    x = np.zeros((2, 50))
    y = np.zeros((2, 50))
    cands = [[-100.0, 0.0], [0.0, 200.0]]
    result = attribute_source(x, y, cands, facility_ids=["W", "N"], prior_weights=[1.0, 3.0],
                              location_sd_m=[100.0, 150.0], unlisted_prior=0.2, aoi_half_width_m=4000.0,
                              position_prior_sd_m=prior_sd_m)
    joint = {
        "W": 0.8 * 0.25 * _normal2_pdf(100.0, 100.0),
        "N": 0.8 * 0.75 * _normal2_pdf(200.0, 150.0),
        UNLISTED_ID: 0.2 / 8000.0**2,
    }
    total = sum(joint.values())
    for fid, value in joint.items():
        assert _prob(result, fid) == pytest.approx(value / total, rel=1e-9)
    assert result.best_facility_id == max(["W", "N"], key=joint.__getitem__)
    assert result.prior_correction_ess == pytest.approx(x.size)


def test_prior_weights_shift_the_split() -> None:
    x, y = _draws((0.0, 0.0), 30.0)
    cands = [[-100.0, 0.0], [100.0, 0.0]]
    even = attribute_source(x, y, cands, facility_ids=["W", "E"], position_prior_sd_m=PRIOR_SD_M)
    tilted = attribute_source(x, y, cands, facility_ids=["W", "E"], prior_weights=[3.0, 1.0],
                              position_prior_sd_m=PRIOR_SD_M)
    assert _prob(tilted, "W") > _prob(even, "W") > _prob(tilted, "E")
    assert _prob(tilted, "W") / _prob(tilted, "E") == pytest.approx(3.0, rel=1e-6)


def test_invariant_to_candidate_order() -> None:
    x, y = _draws((300.0, 200.0), 120.0)
    weights = np.array([1.0, 2.0, 0.5])
    first = attribute_source(x, y, THREE, facility_ids=IDS, prior_weights=weights,
                             position_prior_sd_m=PRIOR_SD_M)
    order = [2, 0, 1]
    second = attribute_source(x, y, THREE[order], facility_ids=[IDS[i] for i in order],
                              prior_weights=weights[order], position_prior_sd_m=PRIOR_SD_M)
    for fid in [*IDS, UNLISTED_ID]:
        assert _prob(first, fid) == pytest.approx(_prob(second, fid), rel=1e-12)
    assert first.best_facility_id == second.best_facility_id


def test_prior_correction_undoes_the_inversion_prior_pull() -> None:
    # Two equal candidates, the posterior sits nearer the prior centre's side only because of the prior:
    # likelihood N(s; (0, 0), 100^2) times prior N(s; (-300, 0), 300^2) gives posterior mean (-30, 0).
    sd_post = 1.0 / np.sqrt(1 / 100.0**2 + 1 / 300.0**2)
    mean_post = (-300.0 / 300.0**2) * sd_post**2
    x, y = _draws((mean_post, 0.0), sd_post, n=40000)
    cands = [[-150.0, 0.0], [150.0, 0.0]]
    corrected = attribute_source(x, y, cands, facility_ids=["W", "E"], position_prior_sd_m=300.0,
                                 position_prior_xy_m=(-300.0, 0.0))
    naive = attribute_source(x, y, cands, facility_ids=["W", "E"], position_prior_sd_m=None)
    assert _prob(naive, "W") > _prob(naive, "E") * 1.5
    assert _prob(corrected, "W") == pytest.approx(_prob(corrected, "E"), rel=0.1)
    assert corrected.prior_correction_ess > 1000


def test_present_mask_and_no_candidates() -> None:
    x, y = _draws((0.0, 0.0), 30.0)
    present = np.ones_like(x)
    present[0, 0] = 0
    result = attribute_source(x, y, np.empty((0, 2)), position_prior_sd_m=PRIOR_SD_M, present=present)
    assert result.n_draws == x.size - 1
    assert result.p_unlisted == pytest.approx(1.0)
    assert result.best_facility_id is None


def test_invalid_inputs_raise() -> None:
    x, y = _draws((0.0, 0.0), 30.0)
    with pytest.raises(ValueError, match="prior_weights"):
        attribute_source(x, y, THREE, prior_weights=[1.0, -1.0, 1.0], position_prior_sd_m=PRIOR_SD_M)
    with pytest.raises(ValueError, match="location_sd_m"):
        attribute_source(x, y, THREE, location_sd_m=0.0, position_prior_sd_m=PRIOR_SD_M)
    with pytest.raises(ValueError, match="no finite"):
        attribute_source(np.full(3, np.nan), np.zeros(3), THREE, position_prior_sd_m=PRIOR_SD_M)


def test_candidates_local_xy_matches_true_offset() -> None:
    xy = candidates_local_xy(np.array([-103.6120]), np.array([31.9080]), -103.6100, 31.9095)
    assert xy.shape == (1, 2)
    assert xy[0, 0] == pytest.approx(-189.0, abs=2.0)
    assert xy[0, 1] == pytest.approx(-166.3, abs=2.0)
