"""OCO-2 observation operator: Lite XCO2 (ppm) over each sounding's footprint quadrilateral."""

from __future__ import annotations

import numpy as np
import xarray as xr

from attribution_assets.science.forward.operators import (
    ObservationBlock,
    project_corners,
    quadrilateral_quadrature,
)
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.units import kg_m2_per_ppm


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
    corners = project_corners(
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
