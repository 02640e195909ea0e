"""Closed-form linear-Gaussian posterior and precision-weighted combination."""

from __future__ import annotations

import numpy as np
import pytest

from attribution_assets.science.inversion.linear_gaussian import (
    GaussianPosterior,
    combine_gaussian_posteriors,
    linear_gaussian_posterior,
)


def test_scalar_posterior_matches_conjugate_formula() -> None:
    # y_i = x + e_i, e ~ N(0, 4), prior N(10, 9), n = 5 observations of mean 13
    y = np.array([12.0, 14.0, 13.0, 11.0, 15.0])
    post = linear_gaussian_posterior(np.ones((5, 1)), y, [10.0], [9.0], np.full(5, 4.0))
    precision = 1 / 9.0 + 5 / 4.0
    assert post.cov[0, 0] == pytest.approx(1 / precision, rel=1e-12)
    assert post.mean[0] == pytest.approx((10 / 9.0 + 65 / 4.0) / precision, rel=1e-12)


def test_full_and_diagonal_observation_covariance_agree() -> None:
    rng = np.random.default_rng(0)
    k = rng.normal(size=(30, 3))
    y = rng.normal(size=30)
    s_o = rng.uniform(0.5, 2.0, size=30)
    a = linear_gaussian_posterior(k, y, np.zeros(3), np.ones(3), s_o)
    b = linear_gaussian_posterior(k, y, np.zeros(3), np.eye(3), np.diag(s_o))
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-10)
    np.testing.assert_allclose(a.cov, b.cov, rtol=1e-10)


def test_correlated_errors_follow_gls() -> None:
    rng = np.random.default_rng(1)
    k = rng.normal(size=(8, 2))
    root = rng.normal(size=(8, 8))
    s_o = root @ root.T + 8 * np.eye(8)
    y = rng.normal(size=8)
    post = linear_gaussian_posterior(k, y, np.zeros(2), np.full(2, 1e12), s_o)
    w = np.linalg.inv(s_o)
    gls = np.linalg.solve(k.T @ w @ k, k.T @ w @ y)  # flat prior -> generalised least squares
    np.testing.assert_allclose(post.mean, gls, rtol=1e-6)


def test_combination_equals_joint_posterior_exactly() -> None:
    rng = np.random.default_rng(2)
    x_a, s_a = np.array([1.0, -2.0, 0.5]), np.diag([4.0, 1.0, 9.0])
    k1, k2 = rng.normal(size=(20, 3)), rng.normal(size=(15, 3))
    y1, y2 = rng.normal(size=20), rng.normal(size=15)
    s1, s2 = rng.uniform(0.2, 1.0, 20), rng.uniform(0.2, 1.0, 15)
    p1 = linear_gaussian_posterior(k1, y1, x_a, s_a, s1)
    p2 = linear_gaussian_posterior(k2, y2, x_a, s_a, s2)
    joint = linear_gaussian_posterior(np.vstack([k1, k2]), np.r_[y1, y2], x_a, s_a, np.r_[s1, s2])
    combined = combine_gaussian_posteriors([p1, p2], shared_prior=GaussianPosterior(x_a, s_a))
    np.testing.assert_allclose(combined.mean, joint.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(combined.cov, joint.cov, rtol=1e-9, atol=1e-12)
    # without removing the doubled prior the result is (wrongly) tighter than the joint posterior
    naive = combine_gaussian_posteriors([p1, p2])
    assert np.all(naive.sd < joint.sd)


def test_independent_estimates_combine_by_inverse_variance() -> None:
    a = GaussianPosterior(np.array([10.0]), np.array([[4.0]]))
    b = GaussianPosterior(np.array([16.0]), np.array([[12.0]]))
    c = combine_gaussian_posteriors([a, b])
    assert c.mean[0] == pytest.approx((10 / 4 + 16 / 12) / (1 / 4 + 1 / 12))
    assert c.cov[0, 0] == pytest.approx(1 / (1 / 4 + 1 / 12))


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="s_o"):
        linear_gaussian_posterior(np.ones((3, 1)), np.ones(3), [0.0], [1.0], np.ones(4))
    with pytest.raises(ValueError, match="at least one"):
        combine_gaussian_posteriors([])
