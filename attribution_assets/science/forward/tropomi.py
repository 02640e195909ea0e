"""TROPOMI observation operator: XCH4 (ppb) through the column averaging kernel, over each pixel's
corner quadrilateral."""

from __future__ import annotations

import numpy as np
import xarray as xr

from attribution_assets.science.forward.operators import (
    ObservationBlock,
    project_corners,
    quadrilateral_quadrature,
)
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.units import PRESSURE_SCALE_HEIGHT_M, molar_mass_kg_mol


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
    scale_height_m: float = PRESSURE_SCALE_HEIGHT_M,
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
    factor of :func:`tropomi_bl_factor_ppb_per_kg_m2` for ``pblh_m`` (m). The optional
    ``surface_albedo_SWIR`` (1) becomes the block's ``albedo``.
    """
    corners = project_corners(
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
        albedo=(np.asarray(ds["surface_albedo_SWIR"].values, np.float64)[keep]
                if "surface_albedo_SWIR" in ds else None),
    )
