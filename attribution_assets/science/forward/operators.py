"""Observation operators: every instrument seen through one linear-in-Q shape.

Observation ``i`` of any instrument is modelled as

    y_i = background + k_i * sum_s w_is * Omega(p_is)

where ``Omega`` is the plume column enhancement (kg m-2, :mod:`attribution_assets.science.forward.plume`),
``p_is`` quadrature points covering the pixel footprint (one point per pixel centre for fine imagers,
many points inside the corner polygon for TROPOMI/OCO-2 footprints, a point-spread kernel for a
blurred imager), ``w_is`` their weights and ``k_i`` the conversion from column mass to the
instrument's units (surface pressure, averaging kernel and sensitivity included). The inversion
stays at each instrument's native resolution: nothing is regridded between instruments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from attribution_assets.science.forward.plume import instrument_sigma_floor_m, weighted_column_kg_m2
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import (
    KG_M2_PER_PPM_M_CH4,
    kg_m2_per_ppb,
    kg_m2_per_ppm,
    molar_mass_kg_mol,
)


@dataclass(frozen=True)
class ObservationBlock:
    """One instrument overpass, ready for the forward model and the inversion.

    ``y`` and ``sigma`` are in ``units`` (``"ppm m"`` for EMIT, ``"ppb"`` for TROPOMI/GHGSat,
    ``"ppm"`` for OCO-2); ``points_xy_m`` (n, s, 2) are metres in the event's local frame;
    ``weights`` (n, s) sum to 1 per observation; ``kg_m2_to_obs`` (n,) converts kg m-2 to ``units``;
    ``sigma_floor_m`` is the crosswind blur (m) of the instrument's spatial response not covered by
    the quadrature points (see :func:`attribution_assets.science.forward.plume.instrument_sigma_floor_m`).
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

    def __post_init__(self) -> None:
        n = self.y.shape[0]
        expected = {
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
) -> jax.Array:
    """Modelled plume enhancement (n,) in observation units, without background: the column at each
    observation's quadrature points ``points_xy_m`` (n, S, 2), averaged with ``weights`` (n, S) and
    converted with ``kg_m2_to_obs`` (n,). Source (2,), rate, wind, stability and floor are scalars.

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
    )
    return kg_m2_to_obs * column


# --------------------------------------------------------------------------------------------
# Block builders: carrier datasets (docs/carriers.md) -> ObservationBlock
# --------------------------------------------------------------------------------------------

METRES_PER_DEG_LAT = 111_320.0
TROPOMI_SCALE_HEIGHT_M = 8000.0
"""Pressure scale height (m) used to turn the boundary-layer height into a pressure level."""


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


def _project_corners(frame: LocalFrame, lon_bounds: np.ndarray, lat_bounds: np.ndarray) -> np.ndarray:
    x, y = frame.to_xy(lon_bounds, lat_bounds)
    return np.stack([x, y], axis=-1)


def emit_block(
    enh: xr.Dataset, frame: LocalFrame, overpass: int, subpixel: int = 1, radius_m: float | None = None
) -> ObservationBlock:
    """EMIT matched-filter enhancements (ppm m) as an observation block.

    ``enh``: ``ch4_enhancement_ppm_m``, ``ch4_enhancement_sd_ppm_m`` and ``valid`` on the
    orthorectified ``(y, x)`` grid with pixel-centre coords ``lat(y)``, ``lon(x)`` (~60 m pixels).
    Every valid, finite pixel (within ``radius_m`` of the frame centre when given) becomes one
    observation, averaged over ``subpixel x subpixel`` equally weighted points at the centres of its
    sub-cells; the remaining sub-cell width enters the block's ``sigma_floor_m`` (box-car variance
    ``w^2 / 12``), so the default single point per pixel already averages the plume over the pixel
    crosswind. ``kg_m2_to_obs = 1 / 7.16e-7`` ppm m per kg m-2 (JPL EMIT conversion, Thorpe et al.
    2023, Sci. Adv. 9, eadh2391).
    """
    lat_c = np.asarray(enh["lat"].values, np.float64)
    lon_c = np.asarray(enh["lon"].values, np.float64)
    y_all = np.asarray(enh["ch4_enhancement_ppm_m"].transpose("y", "x").values, np.float64)
    sd_all = np.asarray(enh["ch4_enhancement_sd_ppm_m"].transpose("y", "x").values, np.float64)
    keep = np.asarray(enh["valid"].transpose("y", "x").values, bool) & np.isfinite(y_all)
    keep &= np.isfinite(sd_all) & (sd_all > 0)
    lat2d, lon2d = np.meshgrid(lat_c, lon_c, indexing="ij")
    if radius_m is not None:
        cx, cy = frame.to_xy(lon2d, lat2d)
        keep &= np.hypot(cx, cy) <= radius_m
    dlat = float(np.median(np.diff(lat_c))) if lat_c.size > 1 else 60.0 / 111_320.0
    dlon = float(np.median(np.diff(lon_c))) if lon_c.size > 1 else dlat / np.cos(np.radians(lat_c[0]))
    frac = (np.arange(subpixel) + 0.5) / subpixel - 0.5
    fy, fx = (a.ravel() for a in np.meshgrid(frac, frac, indexing="ij"))
    lat_p = lat2d[keep][:, None] + fy[None, :] * dlat
    lon_p = lon2d[keep][:, None] + fx[None, :] * dlon
    px, py = frame.to_xy(lon_p, lat_p)
    n, s = lat_p.shape
    return ObservationBlock(
        instrument="EMIT",
        gas="CH4",
        units="ppm m",
        y=y_all[keep],
        sigma=sd_all[keep],
        points_xy_m=np.stack([px, py], axis=-1).reshape(n, s, 2),
        weights=np.full((n, s), 1.0 / s),
        kg_m2_to_obs=np.full(n, 1.0 / KG_M2_PER_PPM_M_CH4),
        overpass=overpass,
        lon=lon2d[keep],
        lat=lat2d[keep],
        sigma_floor_m=instrument_sigma_floor_m(abs(dlat) * METRES_PER_DEG_LAT / subpixel),
    )


def gauss_hermite_stencil(psf_sigma_m: float, order: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (order^2, 2) in metres and weights (order^2,) of a 2-D Gaussian point-spread function.

    Tensor product of the ``order``-point Gauss-Hermite rule for N(0, sigma^2) (probabilists' nodes;
    for order 3: 0, +/- sqrt(3) sigma with weights 2/3, 1/6, 1/6), exact for polynomials of degree
    ``2 order - 1`` in each direction.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    weights = weights / weights.sum()
    ox, oy = np.meshgrid(nodes * psf_sigma_m, nodes * psf_sigma_m, indexing="xy")
    wx, wy = np.meshgrid(weights, weights, indexing="xy")
    return np.stack([ox.ravel(), oy.ravel()], axis=-1), (wx * wy).ravel()


def ghgsat_block(
    ds: xr.Dataset,
    frame: LocalFrame,
    overpass: int,
    surface_pressure_pa: float,
    psf_sigma_m: float = 25.0,
    psf_order: int = 1,
) -> ObservationBlock:
    """GHGSat L2 XCH4 (ppb) as an observation block.

    ``ds``: ``xch4``, ``xch4_precision`` (ppb), ``quality_flag`` (0 good) and ``latitude, longitude``
    on ``(y, x)``. Pixels with ``quality_flag == 0`` and finite values are kept; each is the plume
    seen through a Gaussian point-spread function of ``psf_sigma_m`` (m). With ``psf_order = 1``
    (default) the PSF and the pixel width enter the block's ``sigma_floor_m`` (a Gaussian PSF convolved
    with the Gaussian crosswind profile is Gaussian, exactly), one point per pixel; a larger order
    samples the PSF with an ``order x order`` Gauss-Hermite stencil instead.
    ``kg_m2_to_obs = 1 / kg_m2_per_ppb(p_s, "CH4")`` with ``surface_pressure_pa`` in Pa (column mass
    of 1 ppb; Jacob et al. 2016, ACP 16, 14371).
    """
    xch4 = np.asarray(ds["xch4"].values, np.float64).ravel()
    precision = np.asarray(ds["xch4_precision"].values, np.float64).ravel()
    keep = (np.asarray(ds["quality_flag"].values).ravel() == 0) & np.isfinite(xch4) & np.isfinite(precision)
    keep &= precision > 0
    lon = np.asarray(ds["longitude"].values, np.float64).ravel()[keep]
    lat = np.asarray(ds["latitude"].values, np.float64).ravel()[keep]
    cx, cy = frame.to_xy(lon, lat)
    offsets, w = gauss_hermite_stencil(psf_sigma_m, psf_order)
    points = np.stack([cx, cy], axis=-1)[:, None, :] + offsets[None, :, :]
    n = points.shape[0]
    factor = 1.0 / float(kg_m2_per_ppb(surface_pressure_pa, "CH4"))
    lat_grid = np.asarray(ds["latitude"].values, np.float64)
    pixel_m = (
        float(np.nanmedian(np.abs(np.diff(lat_grid, axis=0)))) * METRES_PER_DEG_LAT
        if lat_grid.shape[0] > 1
        else 25.0
    )
    return ObservationBlock(
        instrument="GHGSAT",
        gas="CH4",
        units="ppb",
        y=xch4[keep],
        sigma=precision[keep],
        points_xy_m=points,
        weights=np.broadcast_to(w, (n, w.size)).copy(),
        kg_m2_to_obs=np.full(n, factor),
        overpass=overpass,
        lon=lon,
        lat=lat,
        sigma_floor_m=instrument_sigma_floor_m(pixel_m, psf_sigma_m if psf_order == 1 else 0.0),
    )


def tropomi_xch4_operator(
    x_model_mol_m2: np.ndarray,
    x_apriori_mol_m2: np.ndarray,
    averaging_kernel: np.ndarray,
    dry_air_subcolumns: np.ndarray,
) -> np.ndarray:
    """TROPOMI XCH4 (ppb) of a modelled CH4 profile, Hasekamp et al. (2019, ATBD, eq. 46).

    ``XCH4 = 1e9 * sum_k [x_a,k + A_k (x_k - x_a,k)] / sum_k n_dry,k`` over the last axis (layers),
    with model and a-priori sub-columns ``x``, ``x_a`` and dry-air sub-columns ``n_dry`` in mol m-2
    and the column averaging kernel ``A`` (1); the form used by the Integrated Methane Inversion
    (Varon et al. 2022, GMD 15, 5787).
    """
    x = np.asarray(x_model_mol_m2, np.float64)
    xa = np.asarray(x_apriori_mol_m2, np.float64)
    column = np.sum(xa + np.asarray(averaging_kernel, np.float64) * (x - xa), axis=-1)
    return 1e9 * column / np.sum(np.asarray(dry_air_subcolumns, np.float64), axis=-1)


def boundary_layer_fractions(
    surface_pressure_pa: np.ndarray,
    pressure_interval_pa: np.ndarray,
    n_layers: int,
    pblh_m: float,
    scale_height_m: float = TROPOMI_SCALE_HEIGHT_M,
) -> np.ndarray:
    """Fraction (n, n_layers) of each TROPOMI layer (index 0 = surface) below the boundary-layer top.

    Layers are equidistant in pressure: layer ``k`` spans ``p_s - k dp`` to ``p_s - (k + 1) dp``. The
    boundary-layer top is at ``p_s exp(-pblh / H)`` with scale height ``H`` (m).
    """
    p_s = np.asarray(surface_pressure_pa, np.float64)[..., None]
    dp = np.asarray(pressure_interval_pa, np.float64)[..., None]
    k = np.arange(n_layers)
    bottom, top = p_s - k * dp, p_s - (k + 1) * dp
    p_bl_top = p_s * np.exp(-float(pblh_m) / scale_height_m)
    return np.clip((bottom - np.maximum(top, p_bl_top)) / dp, 0.0, 1.0)


def tropomi_bl_factor_ppb_per_kg_m2(
    averaging_kernel: np.ndarray, dry_air_subcolumns: np.ndarray, bl_fractions: np.ndarray, gas: str = "CH4"
) -> np.ndarray:
    """XCH4 response (ppb per kg m-2) to a column enhancement mixed through the boundary layer.

    An enhancement ``dOmega`` (kg m-2) is ``dOmega / M`` mol m-2 spread over the layers below the
    boundary-layer top in proportion to their dry-air sub-columns inside it,
    ``dx_k = dOmega / M * n_k f_k / sum_j n_j f_j``; through :func:`tropomi_xch4_operator` this gives
    ``dXCH4 = 1e9 * sum_k A_k dx_k / sum_k n_k``, linear in ``dOmega``.
    """
    a = np.asarray(averaging_kernel, np.float64)
    n_dry = np.asarray(dry_air_subcolumns, np.float64)
    share = n_dry * np.asarray(bl_fractions, np.float64)
    share = share / np.sum(share, axis=-1, keepdims=True)
    return 1e9 / molar_mass_kg_mol(gas) * np.sum(a * share, axis=-1) / np.sum(n_dry, axis=-1)


def tropomi_block(
    ds: xr.Dataset, frame: LocalFrame, overpass: int, pblh_m: float, n_sub: int = 4
) -> ObservationBlock:
    """TROPOMI XCH4 (ppb, bias corrected) as an observation block with its averaging kernel.

    ``ds``: the TROPOMI carrier (``pixel, layer, corner``) with ``xch4``, ``xch4_precision``,
    ``latitude/longitude_bounds``, ``column_averaging_kernel``, ``dry_air_subcolumns``,
    ``surface_pressure`` (Pa) and ``pressure_interval`` (Pa). Pixels with finite values are kept;
    each is the area mean of the plume over its corner quadrilateral (``n_sub x n_sub``
    Jacobian-weighted points, see
    :func:`quadrilateral_quadrature`); ``kg_m2_to_obs`` is the boundary-layer averaging-kernel
    factor of :func:`tropomi_bl_factor_ppb_per_kg_m2` for ``pblh_m`` (m).
    """
    corners = _project_corners(
        frame,
        ds["longitude_bounds"].transpose("pixel", "corner").values,
        ds["latitude_bounds"].transpose("pixel", "corner").values,
    )
    xch4 = np.asarray(ds["xch4"].values, np.float64)
    sd = np.asarray(ds["xch4_precision"].values, np.float64)
    keep = np.isfinite(xch4) & np.isfinite(sd) & (sd > 0) & np.all(np.isfinite(corners), axis=(1, 2))
    points, weights = quadrilateral_quadrature(corners[keep], n_sub)
    kernel = ds["column_averaging_kernel"].transpose("pixel", "layer").values[keep]
    n_dry = ds["dry_air_subcolumns"].transpose("pixel", "layer").values[keep]
    p_s, dp = (np.asarray(ds[k].values, np.float64)[keep] for k in ("surface_pressure", "pressure_interval"))
    fractions = boundary_layer_fractions(p_s, dp, kernel.shape[-1], pblh_m)
    return ObservationBlock(
        instrument="TROPOMI",
        gas="CH4",
        units="ppb",
        y=xch4[keep],
        sigma=sd[keep],
        points_xy_m=points,
        weights=weights,
        kg_m2_to_obs=tropomi_bl_factor_ppb_per_kg_m2(kernel, n_dry, fractions),
        overpass=overpass,
        lon=np.asarray(ds["longitude"].values, np.float64)[keep],
        lat=np.asarray(ds["latitude"].values, np.float64)[keep],
    )


def oco2_block(ds: xr.Dataset, frame: LocalFrame, overpass: int, n_sub: int = 3) -> ObservationBlock:
    """OCO-2 Lite XCO2 (ppm) as an observation block.

    ``ds``: the OCO-2 carrier (``sounding, vertex``) with ``xco2``, ``xco2_uncertainty`` (ppm),
    ``xco2_quality_flag`` (0 good), ``vertex_latitude/longitude`` and ``psurf`` (hPa). Each good
    sounding is the area mean over its footprint quadrilateral (``n_sub x n_sub`` points);
    ``kg_m2_to_obs = 1 / kg_m2_per_ppm(100 psurf, "CO2")``.
    """
    xco2 = np.asarray(ds["xco2"].values, np.float64)
    sd = np.asarray(ds["xco2_uncertainty"].values, np.float64)
    keep = (np.asarray(ds["xco2_quality_flag"].values) == 0) & np.isfinite(xco2) & np.isfinite(sd) & (sd > 0)
    corners = _project_corners(
        frame,
        ds["vertex_longitude"].transpose("sounding", "vertex").values[keep],
        ds["vertex_latitude"].transpose("sounding", "vertex").values[keep],
    )
    points, weights = quadrilateral_quadrature(corners, n_sub)
    psurf_pa = 100.0 * np.asarray(ds["psurf"].values, np.float64)[keep]
    return ObservationBlock(
        instrument="OCO2",
        gas="CO2",
        units="ppm",
        y=xco2[keep],
        sigma=sd[keep],
        points_xy_m=points,
        weights=weights,
        kg_m2_to_obs=1.0 / np.asarray(kg_m2_per_ppm(psurf_pa, "CO2")),
        overpass=overpass,
        lon=np.asarray(ds["longitude"].values, np.float64)[keep],
        lat=np.asarray(ds["latitude"].values, np.float64)[keep],
    )


_predict_block_jit = jax.jit(predict_block, static_argnames="urban")

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


def jacobian(
    block: ObservationBlock, source_xy_m: np.ndarray, wind: OverpassWind, urban: bool = False
) -> np.ndarray:
    """d y / d Q (n,) in observation units per kg s-1 at the met prior (``predict_block`` with Q = 1).

    Arrays are padded to :func:`padded_rows` so that blocks of similar size reuse one compilation.
    """
    rows = padded_rows(block.size, block.weights.shape[1])
    values = _predict_block_jit(
        jnp.asarray(_pad_rows(block.points_xy_m, rows), jnp.float32),
        jnp.asarray(_pad_rows(block.weights, rows), jnp.float32),
        jnp.asarray(_pad_rows(block.kg_m2_to_obs, rows), jnp.float32),
        jnp.asarray(source_xy_m, dtype=float),
        1.0,
        wind.u_m_s,
        wind.v_m_s,
        wind.stability_index,
        urban=urban,
        sigma_floor_m=block.sigma_floor_m,
    )
    return np.asarray(values, np.float64)[: block.size]
