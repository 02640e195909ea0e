"""Observation groups: rows of independent-error blocks, grid windows of correlated-error blocks."""

from __future__ import annotations

from dataclasses import replace

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import sparse

from attribution_assets.science.forward.operators import ObservationBlock, predict_block
from attribution_assets.science.inversion.groups import (
    WINDOW_MULTIPLE,
    assemble,
    coupled_form,
    per_observation,
)
from attribution_assets.science.inversion.simulation import grid_block, met_prior

WIND = met_prior(3.0, 1.0)


def _gappy_block(pixels: int = 14) -> ObservationBlock:
    """A ``pixels`` x ``pixels`` EMIT-like grid without its first row and two other pixels, with a
    nearest-neighbour precision (0.2 per pair) on the pixels it has."""
    full = grid_block("EMIT", "ppm m", pixels, 60.0, 1, 1.0 / 7.16e-7, 400.0, 0)
    keep = np.ones(full.size, bool)
    keep[:pixels] = False
    keep[[40, 77]] = False
    rows, cols = full.grid_index[keep].T
    n = int(keep.sum())
    lookup = {(r, c): i for i, (r, c) in enumerate(zip(rows, cols, strict=True))}
    q = sparse.lil_matrix((n, n))
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        q[i, i] = 1.0
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            j = lookup.get((r + dr, c + dc))
            if j is not None:
                q[i, j] = -0.2
    rng = np.random.default_rng(0)
    return ObservationBlock(
        instrument="EMIT", gas="CH4", units="ppm m", y=400.0 * rng.standard_normal(n), sigma=full.sigma[keep],
        points_xy_m=full.points_xy_m[keep], weights=full.weights[keep], kg_m2_to_obs=full.kg_m2_to_obs[keep],
        overpass=0, lon=full.lon[keep], lat=full.lat[keep], grid_index=full.grid_index[keep],
        error_precision=(q / 400.0**2).tocsr(),
    )


def _plume(block: ObservationBlock) -> np.ndarray:
    return np.asarray(predict_block(
        jnp.asarray(block.points_xy_m), jnp.asarray(block.weights), jnp.asarray(block.kg_m2_to_obs),
        jnp.array([-200.0, 0.0]), 1.0, WIND.u_m_s, WIND.v_m_s, WIND.stability_index), float)


def test_a_correlated_error_block_becomes_a_grid_window_with_gaps_as_padding() -> None:
    block = _gappy_block()
    (group,) = assemble([block], np.zeros(1))
    lags, rows, cols = group.coupling.shape
    assert lags == 12 and rows % WINDOW_MULTIPLE == 0 and cols % WINDOW_MULTIPLE == 0
    assert (rows, cols) == (16, 16)  # 13 x 14 pixels, rounded up
    obs = np.asarray(group.obs)
    assert sorted(obs[obs >= 0]) == list(range(block.size))
    np.testing.assert_array_equal(np.asarray(group.k) > 0, obs >= 0)
    mapped = per_observation(group, obs.astype(float), block.size)
    np.testing.assert_array_equal(mapped, np.arange(block.size))


def test_the_quadratic_form_of_a_window_is_the_sparse_matrix_product() -> None:
    """``m' Q m`` from the window's diagonal and shifted couplings equals the sparse product, for a
    plume that is nonzero over most of the grid; independent errors have no coupled part."""
    block = _gappy_block()
    (group,) = assemble([block], np.zeros(1))
    plume = _plume(block)
    rows = np.zeros(group.qr.shape[0])
    obs = np.asarray(group.obs)
    rows[obs >= 0] = plume[obs[obs >= 0]]
    expected = plume @ (block.precision() @ plume)
    diagonal = np.sum(np.asarray(group.qdiag) * rows**2)
    assert diagonal == pytest.approx(np.sum(block.precision().diagonal() * plume**2), rel=1e-5)
    coupled = float(coupled_form(group, jnp.asarray(rows, jnp.float32)))
    assert diagonal + coupled == pytest.approx(expected, rel=1e-5)
    (plain,) = assemble([replace(block, error_precision=None)], np.zeros(1))
    assert float(coupled_form(plain, jnp.zeros(plain.qr.shape[0]))) == 0.0


def test_precisions_the_window_cannot_hold_are_refused() -> None:
    block = _gappy_block()
    far = sparse.lil_matrix(block.error_precision)
    far[0, 50] = far[50, 0] = -1e-7
    with pytest.raises(ValueError, match="farther apart than the correlated-error stencil"):
        assemble([replace(block, error_precision=far.tocsr())], np.zeros(1))
    with pytest.raises(ValueError, match="an error_precision needs grid_index"):
        assemble([replace(block, grid_index=None)], np.zeros(1))


def test_a_screened_window_covers_the_kept_observations_only() -> None:
    block = _gappy_block()
    keep = np.zeros(block.size, bool)
    keep[block.grid_index[:, 1] < 5] = True
    (group,) = assemble([block], np.zeros(1), [keep])
    _, rows, cols = group.coupling.shape
    assert cols == 8 and rows == 16  # columns 0-4 rounded up to 8; every row has a kept pixel
    obs = np.asarray(group.obs)
    assert set(np.flatnonzero(keep)) <= set(obs[obs >= 0])
