"""Observation groups: the arrays of one block that the likelihood evaluates, with its error precision.

Each observation block becomes one group of arrays (rows x quadrature points) padded to a geometric
bucket size (:func:`~attribution_assets.science.forward.operators.padded_rows`), so the likelihood
is vectorised at every instrument's native resolution and similar events reuse the compiled
program. The likelihood needs a block's error precision ``Q``
(:meth:`~attribution_assets.science.forward.operators.ObservationBlock.precision`) only through
``Q r`` and ``Q 1`` at the group's rows (``r`` the residuals from the prior background, over the
whole block) and through ``m' Q m`` for a plume ``m`` that is zero outside them (its diagonal
part, and :func:`coupled_form`).

- Independent errors: one row per observation, ``m' Q m = sum_i Q_ii m_i^2``.
- Correlated errors (a field fitted on the pixel grid,
  :mod:`~attribution_assets.science.inversion.correlated_error`): the rows are the cells of a
  rectangular window of the grid around the observations, in row-major order, its sides rounded
  up to a multiple of ``WINDOW_MULTIPLE`` cells (cells without an observation are padding), and
  ``m' Q m`` adds, for each lag ``h`` of the half stencil, ``2 sum_i Q_{i,i+h} m_i m_{i+h}`` with
  ``m_{i+h}`` a shifted copy of the grid. Shifts of a grid are contiguous slices; gathering every
  row's 24 neighbours instead made a batch of 1024 likelihoods 16 times slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import sparse

from attribution_assets.science.forward.operators import ObservationBlock, padded_rows
from attribution_assets.science.inversion.correlated_error import STENCIL_RADIUS, half_stencil

STENCIL = half_stencil()
"""The lags (K, 2) (rows, columns) of the correlated-error window's couplings, one of each pair."""
WINDOW_MULTIPLE = 4
"""A correlated-error window's rows and columns are rounded up to a multiple of this, so windows
of similar size share compiled code."""


class ObservationGroup(NamedTuple):
    """The rows of one block that the plume can reach (a JAX pytree, float32; module docstring).

    Padding rows (and grid cells without an observation) have ``obs = -1``, ``k = 0``, zero weights
    and zero precision, and contribute nothing. One group per block keeps the block's background,
    noise inflation and overpass wind scalars.
    """

    qr: jax.Array  # (n,) (Q r)_i, block units^-1
    q1: jax.Array  # (n,) (Q 1)_i, block units^-2
    qdiag: jax.Array  # (n,) Q_ii, block units^-2
    coupling: jax.Array  # (K, R, C) Q of a window cell and its neighbour at +STENCIL[k]; (0, 1, 1): none
    sigma: jax.Array  # (n,) reported 1-sigma, block units
    k: jax.Array  # (n,) obs units per kg m-2
    obs: jax.Array  # (n,) int32 observation number of the row in its block, -1 for padding
    points: jax.Array  # (n, S, 2) quadrature points, m
    weights: jax.Array  # (n, S)
    block: jax.Array  # () int32 block index
    overpass: jax.Array  # () int32 overpass index
    sigma_floor_m: jax.Array  # () crosswind blur of the instrument response, m


def coupled_form(group: ObservationGroup, values: jax.Array) -> jax.Array:
    """``v' Q v - sum_i Q_ii v_i^2``, the off-diagonal part of the quadratic form among the group's
    rows, for ``values`` (n,) that are zero outside them (0 for independent errors: the diagonal
    part belongs in the caller's own sum over the rows, one pass over ``values``)."""
    lags, rows, cols = group.coupling.shape
    if lags == 0:
        return jnp.zeros((), values.dtype)
    r = STENCIL_RADIUS
    grid = values[: rows * cols].reshape(rows, cols)
    padded = jnp.pad(grid, r)
    acc = jnp.zeros((rows, cols), values.dtype)
    for k, (dr, dc) in enumerate(STENCIL):
        acc = acc + group.coupling[k] * padded[r + dr : r + dr + rows, r + dc : r + dc + cols]
    return 2.0 * jnp.sum(grid * acc)


def block_statistics(blocks: Sequence[ObservationBlock], bg_mu: np.ndarray) -> np.ndarray:
    """``(1' Q 1, 1' Q r, r' Q r)`` (3, B) of every block (``Q`` its error precision, ``r`` its
    residuals from the prior background ``bg_mu``)."""
    out = np.zeros((3, len(blocks)))
    for b, block in enumerate(blocks):
        precision = block.precision()
        resid = np.asarray(block.y, float) - bg_mu[b]
        q1 = precision @ np.ones(block.size)
        out[:, b] = q1.sum(), q1 @ resid, resid @ (precision @ resid)
    return out


def _window(block: ObservationBlock, kept: np.ndarray) -> np.ndarray:
    """Observation number (R, C) of every cell of the grid window around the ``kept`` observations
    (-1: none), its sides rounded up to a multiple of ``WINDOW_MULTIPLE``."""
    if block.grid_index is None:
        raise ValueError(f"ObservationBlock {block.instrument}: an error_precision needs grid_index")
    grid = np.asarray(block.grid_index, int)
    low = grid[kept].min(axis=0)
    size = -(-(grid[kept].max(axis=0) - low + 1) // WINDOW_MULTIPLE) * WINDOW_MULTIPLE
    cells = np.full(tuple(size), -1, int)
    local = grid - low
    inside = np.all((local >= 0) & (local < size), axis=1)
    cells[local[inside, 0], local[inside, 1]] = np.flatnonzero(inside)
    return cells


def _window_coupling(precision: sparse.csr_matrix, cells: np.ndarray) -> np.ndarray:
    """The couplings (K, R, C) of every window cell to its neighbour at each lag of ``STENCIL`` (the
    other half of each pair is the neighbour's); raises ``ValueError`` when ``precision`` couples the
    window's observations beyond the stencil."""
    r = STENCIL_RADIUS
    padded = np.pad(cells, r, constant_values=-1)
    rows, cols = cells.shape
    coupling = np.zeros((len(STENCIL), rows, cols))
    for k, (dr, dc) in enumerate(STENCIL):
        other = padded[r + dr : r + dr + rows, r + dc : r + dc + cols]
        pair = (cells >= 0) & (other >= 0)
        coupling[k][pair] = np.asarray(precision[cells[pair], other[pair]]).ravel()
    inside = cells[cells >= 0]
    off = precision[inside][:, inside]
    off_total = abs(off).sum() - np.abs(off.diagonal()).sum()
    if not np.isclose(2.0 * np.abs(coupling).sum(), off_total, rtol=1e-9, atol=0.0):
        raise ValueError("error_precision couples pixels farther apart than the correlated-error stencil")
    return coupling


def _layout(block: ObservationBlock, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The observation number of each row (-1: none) and the couplings (K, R, C) of the group."""
    if block.error_precision is None:
        return np.flatnonzero(kept), np.zeros((0, 1, 1))
    cells = _window(block, kept if kept.any() else np.arange(block.size) == 0)
    return cells.ravel(), _window_coupling(block.precision(), cells)


def assemble(
    blocks: Sequence[ObservationBlock], bg_mu: np.ndarray, keep: Sequence[np.ndarray] | None = None
) -> tuple[ObservationGroup, ...]:
    """One group per block with its kept observations (all when ``keep`` is None; a correlated-error
    block keeps the grid window around them), residuals from the prior backgrounds ``bg_mu``."""
    groups = []
    for b, block in enumerate(blocks):
        kept = np.ones(block.size, bool) if keep is None else np.asarray(keep[b], bool)
        obs, coupling = _layout(block, kept)
        precision = block.precision()
        resid = np.asarray(block.y, float) - bg_mu[b]
        size = block.weights.shape[1]
        padded = padded_rows(obs.size, size)
        rows = np.flatnonzero(obs >= 0)
        take = obs[rows]
        arrays = {
            "qr": np.zeros(padded),
            "q1": np.zeros(padded),
            "qdiag": np.zeros(padded),
            "sigma": np.ones(padded),
            "k": np.zeros(padded),
            "points": np.zeros((padded, size, 2)),
            "weights": np.zeros((padded, size)),
        }
        arrays["qr"][rows] = (precision @ resid)[take]
        arrays["q1"][rows] = (precision @ np.ones(block.size))[take]
        arrays["qdiag"][rows] = precision.diagonal()[take]
        arrays["sigma"][rows] = np.asarray(block.sigma, float)[take]
        arrays["k"][rows] = np.asarray(block.kg_m2_to_obs, float)[take]
        arrays["points"][rows] = np.asarray(block.points_xy_m, float)[take]
        arrays["weights"][rows] = np.asarray(block.weights, float)[take]
        observation = np.full(padded, -1, np.int32)
        observation[: obs.size] = obs
        groups.append(
            ObservationGroup(
                **{name: jnp.asarray(v, jnp.float32) for name, v in arrays.items()},
                coupling=jnp.asarray(coupling, jnp.float32),
                obs=jnp.asarray(observation),
                block=jnp.asarray(b, jnp.int32),
                overpass=jnp.asarray(block.overpass, jnp.int32),
                sigma_floor_m=jnp.asarray(block.sigma_floor_m, jnp.float32),
            )
        )
    return tuple(groups)


def per_observation(group: ObservationGroup, values: np.ndarray, size: int, fill: float = 0.0) -> np.ndarray:
    """``values`` (n,) of the group's rows as an array (size,) over its block's observations
    (``fill`` where the group has no row)."""
    out = np.full(size, fill, dtype=float)
    obs = np.asarray(group.obs)
    out[obs[obs >= 0]] = np.asarray(values, float)[obs >= 0]
    return out
