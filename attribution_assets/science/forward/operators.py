"""Observation operators: every instrument seen through one linear-in-Q shape.

Observation ``i`` of any instrument is modelled as

    y_i = background + k_i * sum_s w_is * Omega(p_is)

where ``Omega`` is the plume column enhancement (kg m-2, :mod:`attribution_assets.science.forward.plume`),
``p_is`` quadrature points covering the pixel footprint (one point per pixel centre for fine imagers,
many points inside the corner polygon for TROPOMI/OCO-2 footprints, a point-spread kernel for a
blurred imager), ``w_is`` their weights and ``k_i`` the conversion from column mass to the
instrument's units (surface pressure, averaging kernel and sensitivity included). The inversion
stays at each instrument's native resolution: nothing is regridded between instruments.

This module holds that shared core: :class:`ObservationBlock`, :func:`predict_block`, the footprint
quadrature and the padded evaluation (:func:`padded_rows`, :func:`jacobian`). Each instrument's block
builder is its own module: :mod:`~attribution_assets.science.forward.emit`,
:mod:`~attribution_assets.science.forward.ghgsat`, :mod:`~attribution_assets.science.forward.tropomi`
and :mod:`~attribution_assets.science.forward.oco2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy import sparse

from attribution_assets.science.forward.plume import weighted_column_kg_m2
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.met.wind import OverpassWind


@dataclass(frozen=True)
class ObservationBlock:
    """One instrument overpass, ready for the forward model and the inversion.

    ``y`` and ``sigma`` are in ``units`` (``"ppm m"`` for EMIT, ``"ppb"`` for TROPOMI/GHGSat,
    ``"ppm"`` for OCO-2); ``points_xy_m`` (n, s, 2) are metres in the event's local frame;
    ``weights`` (n, s) sum to 1 per observation; ``kg_m2_to_obs`` (n,) converts kg m-2 to ``units``;
    ``sigma_floor_m`` is the crosswind blur (m) of the instrument's spatial response not covered by
    the quadrature points (see :func:`attribution_assets.science.forward.plume.instrument_sigma_floor_m`);
    ``albedo`` (n,) is the surface albedo (1) the retrieval reports per observation, where it does
    (the covariate of :mod:`attribution_assets.science.inversion.albedo`), else None.
    ``grid_index`` (n, 2) int is each observation's (row, column) on an imager's pixel grid, else
    None. ``error_precision`` (n, n, a ``scipy.sparse`` matrix, block units^-2) is the inverse
    covariance of the observation errors where they are correlated (fitted by
    :mod:`attribution_assets.science.inversion.correlated_error` from ``grid_index``); None means
    independent errors of sd ``sigma``.
    """

    instrument: str
    gas: str
    units: str
    y: np.ndarray
    sigma: np.ndarray
    points_xy_m: np.ndarray
    weights: np.ndarray
    kg_m2_to_obs: np.ndarray
    overpass: int
    lon: np.ndarray
    lat: np.ndarray
    sigma_floor_m: float = 15.0
    albedo: np.ndarray | None = None
    grid_index: np.ndarray | None = None
    error_precision: sparse.csr_matrix | None = None

    def __post_init__(self) -> None:
        n = self.y.shape[0]
        expected = {
            **({"albedo": (n,)} if self.albedo is not None else {}),
            **({"grid_index": (n, 2)} if self.grid_index is not None else {}),
            **({"error_precision": (n, n)} if self.error_precision is not None else {}),
            "sigma": (n,),
            "kg_m2_to_obs": (n,),
            "lon": (n,),
            "lat": (n,),
            "weights": (n, self.points_xy_m.shape[1]),
            "points_xy_m": (n, self.points_xy_m.shape[1], 2),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"ObservationBlock {self.instrument}: {name} has shape "
                    f"{getattr(self, name).shape}, expected {shape}"
                )

    @property
    def size(self) -> int:
        """Number of observations."""
        return int(self.y.shape[0])

    def precision(self) -> sparse.csr_matrix:
        """The precision (n, n, units^-2) of the observation errors: ``error_precision``, else
        ``diag(1 / sigma^2)``."""
        if self.error_precision is not None:
            return sparse.csr_matrix(self.error_precision)
        return sparse.diags(1.0 / np.asarray(self.sigma, float) ** 2).tocsr()


def predict_block(
    points_xy_m: jax.Array,
    weights: jax.Array,
    kg_m2_to_obs: jax.Array,
    source_xy_m: jax.Array,
    q_kg_s: jax.Array,
    wind_u_m_s: jax.Array,
    wind_v_m_s: jax.Array,
    stability_index: jax.Array,
    urban: bool = False,
    sigma_floor_m: jax.Array | float = 15.0,
    bend_per_m: jax.Array | float = 0.0,
) -> jax.Array:
    """Modelled plume enhancement (n,) in observation units, without background: the column at each
    observation's quadrature points ``points_xy_m`` (n, S, 2), averaged with ``weights`` (n, S) and
    converted with ``kg_m2_to_obs`` (n,). Source (2,), rate, wind, stability, floor and the centre
    line's bend (rad m-1; 0: a straight plume) are scalars.

    Linear in ``q_kg_s``: with ``q_kg_s = 1`` this is the Jacobian of the observations with respect
    to the emission rate in kg s-1. Its reverse-mode gradient is closed-form
    (:func:`~attribution_assets.science.forward.plume.weighted_column_kg_m2`).
    """
    column = weighted_column_kg_m2(
        points_xy_m,
        weights,
        source_xy_m,
        q_kg_s,
        wind_u_m_s,
        wind_v_m_s,
        stability_index,
        urban=urban,
        sigma_floor_m=sigma_floor_m,
        bend_per_m=bend_per_m,
    )
    return kg_m2_to_obs * column


# --------------------------------------------------------------------------------------------
# Footprint quadrature shared by the instrument operators
# --------------------------------------------------------------------------------------------


def _order_corners(corners_xy_m: np.ndarray) -> np.ndarray:
    """Corners (n, 4, 2) re-ordered counter-clockwise around their centroid (any input order)."""
    centre = corners_xy_m.mean(axis=1, keepdims=True)
    angle = np.arctan2(corners_xy_m[..., 1] - centre[..., 1], corners_xy_m[..., 0] - centre[..., 0])
    order = np.argsort(angle, axis=1)
    return np.take_along_axis(corners_xy_m, order[..., None], axis=1)


def quadrilateral_quadrature(corners_xy_m: np.ndarray, n_sub: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (n, n_sub^2, 2) and area weights (n, n_sub^2) covering each quadrilateral footprint.

    The unit square is mapped onto the quadrilateral bilinearly,
    ``P(s, t) = (1-s)(1-t) P0 + s(1-t) P1 + s t P2 + (1-s) t P3``; points sit at the centres of an
    ``n_sub x n_sub`` grid in (s, t) and are weighted by the Jacobian ``|det dP/d(s, t)|`` (the local
    area element), normalised to sum to 1, so a weighted sum is the midpoint rule for the area mean
    over the footprint. ``corners_xy_m`` (n, 4, 2) in metres, in any order.
    """
    p0, p1, p2, p3 = np.moveaxis(_order_corners(np.asarray(corners_xy_m, np.float64)), 1, 0)
    nodes = (np.arange(n_sub) + 0.5) / n_sub
    s, t = (a.ravel()[None, :, None] for a in np.meshgrid(nodes, nodes, indexing="xy"))
    p0, p1, p2, p3 = (p[:, None, :] for p in (p0, p1, p2, p3))
    points = (1 - s) * (1 - t) * p0 + s * (1 - t) * p1 + s * t * p2 + (1 - s) * t * p3
    d_ds = (1 - t) * (p1 - p0) + t * (p2 - p3)
    d_dt = (1 - s) * (p3 - p0) + s * (p2 - p1)
    area = np.abs(d_ds[..., 0] * d_dt[..., 1] - d_ds[..., 1] * d_dt[..., 0])
    return points, area / area.sum(axis=1, keepdims=True)


def project_corners(frame: LocalFrame, lon_bounds: np.ndarray, lat_bounds: np.ndarray) -> np.ndarray:
    """Footprint corners (degrees, (..., 4)) as local metres (..., 4, 2) in ``frame``."""
    x, y = frame.to_xy(lon_bounds, lat_bounds)
    return np.stack([x, y], axis=-1)


# --------------------------------------------------------------------------------------------
# Padded evaluation: one compilation for blocks of similar size
# --------------------------------------------------------------------------------------------

_predict_block_jit = jax.jit(predict_block, static_argnames="urban")


@partial(jax.jit, static_argnames="urban")
def _unit_plumes_jit(
    points_xy_m: jax.Array,
    weights: jax.Array,
    kg_m2_to_obs: jax.Array,
    sources_xy_m: jax.Array,
    wind_u_m_s: jax.Array,
    wind_v_m_s: jax.Array,
    stability_index: jax.Array,
    sigma_floor_m: jax.Array,
    urban: bool = False,
) -> jax.Array:
    """``predict_block`` at Q = 1 kg s-1 for K sources (K, 2) and winds (K,): (K, n)."""
    def one(source: jax.Array, u: jax.Array, v: jax.Array) -> jax.Array:
        return predict_block(points_xy_m, weights, kg_m2_to_obs, source, 1.0, u, v, stability_index,
                             urban=urban, sigma_floor_m=sigma_floor_m)

    return jax.vmap(one)(sources_xy_m, wind_u_m_s, wind_v_m_s)

MIN_BUCKET_POINTS = 1024
BUCKETS_PER_OCTAVE = 4


def padded_rows(rows: int, points_per_row: int) -> int:
    """Row count after padding ``rows`` observations of ``points_per_row`` quadrature points each.

    The padded point count is the smallest ``MIN_BUCKET_POINTS * 2^(j / BUCKETS_PER_OCTAVE)`` that
    holds them (at most 19 % padding), so events of similar size share compiled code: XLA compiles
    once per array shape, and with these buckets once per process rather than once per event.
    """
    points = max(rows * points_per_row, 1)
    j = max(0, math.ceil(BUCKETS_PER_OCTAVE * math.log2(points / MIN_BUCKET_POINTS) - 1e-9))
    return -(-math.ceil(MIN_BUCKET_POINTS * 2 ** (j / BUCKETS_PER_OCTAVE)) // points_per_row)


def _pad_rows(values: np.ndarray, rows: int) -> np.ndarray:
    """``values`` with zero rows appended up to ``rows``."""
    return np.concatenate([values, np.zeros((rows - values.shape[0],) + values.shape[1:])])


def _padded_arrays(block: ObservationBlock) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The block's quadrature points (m), weights and kg m-2 -> observation factors, float32, padded
    to :func:`padded_rows` so that blocks of similar size reuse one compilation."""
    rows = padded_rows(block.size, block.weights.shape[1])
    arrays = (block.points_xy_m, block.weights, block.kg_m2_to_obs)
    return tuple(jnp.asarray(_pad_rows(a, rows), jnp.float32) for a in arrays)


def jacobian(
    block: ObservationBlock, source_xy_m: np.ndarray, wind: OverpassWind, urban: bool = False
) -> np.ndarray:
    """d y / d Q (n,) in observation units per kg s-1 at the met prior (``predict_block`` with Q = 1).

    Arrays are padded to :func:`padded_rows` so that blocks of similar size reuse one compilation.
    """
    values = _predict_block_jit(
        *_padded_arrays(block),
        jnp.asarray(source_xy_m, dtype=float),
        1.0,
        wind.u_m_s,
        wind.v_m_s,
        wind.stability_index,
        urban=urban,
        sigma_floor_m=block.sigma_floor_m,
    )
    return np.asarray(values, np.float64)[: block.size]


def jacobians(
    block: ObservationBlock,
    sources_xy_m: np.ndarray,
    wind_u_m_s: np.ndarray,
    wind_v_m_s: np.ndarray,
    stability_index: float,
    urban: bool = False,
) -> np.ndarray:
    """:func:`jacobian` for K sources (K, 2) and winds (K,) in m s-1 at once: (K, n) in observation
    units per kg s-1; the block's arrays go to the device once."""
    values = _unit_plumes_jit(
        *_padded_arrays(block),
        jnp.asarray(sources_xy_m, dtype=float),
        jnp.asarray(wind_u_m_s, dtype=float),
        jnp.asarray(wind_v_m_s, dtype=float),
        stability_index,
        block.sigma_floor_m,
        urban=urban,
    )
    return np.asarray(values, np.float64)[:, : block.size]
