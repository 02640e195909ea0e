"""GHGSat observation operator: L2 XCH4 (ppb) seen through the instrument's point-spread function."""

from __future__ import annotations

import numpy as np
import xarray as xr

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.forward.plume import instrument_sigma_floor_m
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.units import METRES_PER_DEG_LAT, kg_m2_per_ppb


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
    of 1 ppb; Jacob et al. 2016, ACP 16, 14371). A ``surface_albedo`` (1) in ``ds`` becomes the
    block's ``albedo``; each observation keeps its (row, column) on the grid (``grid_index``).
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
        albedo=(np.asarray(ds["surface_albedo"].values, np.float64).ravel()[keep]
                if "surface_albedo" in ds else None),
        grid_index=np.argwhere(keep.reshape(np.shape(ds["xch4"].values))),
    )
