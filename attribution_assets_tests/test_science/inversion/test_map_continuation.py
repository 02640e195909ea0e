"""The MAP search past its stops: one overpass's wind turned alone, and descent after the Newton polish.

The case is event 254 of the misspecified validation set (``--events 300 --seed 2``): a 22 t/h
source seen by EMIT, GHGSat and TROPOMI at three different hours. The EMIT plume points 70 degrees
away from the other two, so rotating every overpass's wind together leaves the search far above the
optimum.
"""

from __future__ import annotations

import numpy as np
import pytest

from attribution_assets.science import inversion as inv
from attribution_assets.science.inversion import optimise
from attribution_assets.science.inversion.laplace import SADDLE_STEPS, polished_optimum, saddle_exit
from attribution_assets.science.inversion.optimise import float32_rounding, potential_value
from attribution_assets.science.validation.scenes import set_scene

FAST = inv.InversionSettings().fast_answer()


@pytest.fixture(scope="module")
def problem() -> tuple[inv.InversionProblem, inv.ModelConfig]:
    scene = set_scene(300, 2, 253)
    assert scene.truth.kind == "strong" and len(scene.winds) == 3
    blocks, _ = inv.remove_albedo_artefacts(scene.blocks)
    blocks, _ = inv.model_correlated_errors(blocks)
    return inv.prepare(blocks, scene.winds, scene.gas, FAST)


@pytest.fixture(scope="module")
def stuck_mode(problem) -> optimise.Mode:
    """The best optimum of the multi-start alone (no overpass turned on its own)."""
    data, config = problem
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(optimise, "rotate_overpasses", lambda mode, *_: mode)
        modes, _ = optimise.find_modes(data, config, FAST)
    return modes[0]


@pytest.fixture(scope="module")
def modes(problem) -> list[optimise.Mode]:
    data, config = problem
    return optimise.find_modes(data, config, FAST)[0]


def test_turning_one_overpass_alone_finds_the_optimum_the_joint_rotations_miss(
    problem, stuck_mode, modes
) -> None:
    data, config = problem
    assert modes[0][1] < stuck_mode[1] - 500.0
    direction = config.layout()["direction"]
    turned = np.abs(modes[0][0][direction] - stuck_mode[0][direction]) * np.asarray(data.dir_sd)
    assert np.rad2deg(turned.max()) > 45.0 and np.sum(np.rad2deg(turned) > 10.0) == 1, "one overpass turned"


def test_polish_descends_out_of_a_stop_short_of_an_optimum(problem, stuck_mode, modes) -> None:
    data, config = problem
    z, value, hess = polished_optimum(*stuck_mode, data, config, "present")
    assert value < stuck_mode[1] - 500.0
    assert value == pytest.approx(modes[0][1], abs=10.0)
    assert np.linalg.eigvalsh(hess)[0] > 0.0, "a minimum, not a saddle"
    fit = inv.laplace_fit(*stuck_mode, data, config, "present")
    assert fit.potential == pytest.approx(value)
    assert np.sqrt(np.diag(fit.cov)).max() < 1.5, "no posterior sd wider than the prior's"


def test_a_saddle_is_left_along_any_negative_direction_not_only_the_most_negative(problem, modes) -> None:
    """One prior sd east of the optimum, with a Hessian whose most negative eigenvalue lies along a
    background (stiff: every trial step along it climbs, as float32 noise in a difference Hessian
    can make it) and whose second lies along the source's x: the exit goes back along x."""
    data, config = problem
    z_min, _, _ = polished_optimum(*modes[0], data, config, "present")
    lay = config.layout()
    x, background = lay["position"].start, lay["background"].start
    z = z_min.copy()
    z[x] += 1.0
    value = potential_value(z, data, config, "present")
    hess = np.eye(config.dim)
    hess[background, background], hess[x, x] = -100.0, -1.0
    for t in SADDLE_STEPS:  # the premise: no trial step along the most negative direction descends
        step = np.zeros(config.dim)
        step[background] = t
        assert potential_value(z + step, data, config, "present") >= value - float32_rounding(value)
    exit_point = saddle_exit(z, value, hess, data, config, "present")
    assert exit_point is not None
    moved = np.flatnonzero(exit_point != z)
    assert moved.tolist() == [x]
    assert potential_value(exit_point, data, config, "present") < value - float32_rounding(value)
