"""Laplace fits where the Hessian does not resolve a minimum: counted, and said in the method."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attribution_assets.science import inversion as inv
from attribution_assets.science.inversion.api import describe_method
from attribution_assets.science.inversion.laplace import UNRESOLVED_CURVATURE, gaussian_at


def _rotation(seed: int, size: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((size, size)))
    return q


def test_a_direction_of_no_positive_curvature_is_counted_and_left_unconstrained() -> None:
    """Hessian eigenvalues -5, 1e-4, 0.5 and 4 in a rotated basis: the first two are unresolved and
    get the floor curvature (variance 1,000), the others keep theirs; the log-evidence is
    ``-U - log det / 2`` of the Hessian so floored."""
    basis = _rotation(0, 4)
    hess = (basis * np.array([-5.0, 1e-4, 0.5, 4.0])) @ basis.T
    fit = gaussian_at(np.arange(4.0), 12.0, hess)
    assert fit.unresolved_directions == 2
    variances = np.einsum("ik,ij,jk->k", basis, fit.cov, basis)
    floor = 1.0 / UNRESOLVED_CURVATURE
    np.testing.assert_allclose(variances, [floor, floor, 2.0, 0.25], rtol=1e-9)
    expected = -12.0 - 0.5 * math.log(UNRESOLVED_CURVATURE**2 * 0.5 * 4.0)
    assert fit.log_evidence == pytest.approx(expected)
    assert fit.potential == 12.0 and np.array_equal(fit.mean, np.arange(4.0))


def test_a_resolved_minimum_keeps_its_inverse_hessian() -> None:
    basis = _rotation(1, 3)
    hess = (basis * np.array([2.0 * UNRESOLVED_CURVATURE, 0.3, 50.0])) @ basis.T
    fit = gaussian_at(np.zeros(3), 0.0, hess)
    assert fit.unresolved_directions == 0
    np.testing.assert_allclose(fit.cov, np.linalg.inv(hess), rtol=1e-9)


def test_the_fast_answers_method_says_when_its_fit_left_directions_unresolved() -> None:
    settings = inv.InversionSettings().fast_answer()
    resolved = gaussian_at(np.zeros(2), 0.0, np.eye(2))
    unresolved = gaussian_at(np.zeros(2), 0.0, np.diag([1.0, -3.0]))
    plain = "gaussian-plume multi-start MAP + Laplace"
    assert describe_method("laplace", settings, True, resolved) == plain
    label = describe_method("laplace", settings, True, unresolved)
    assert label.startswith("gaussian-plume multi-start MAP + Laplace (not at a resolved minimum")
    assert "1 Hessian direction(s) unresolved; interval unreliable" in label
