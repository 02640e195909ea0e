"""GHGSat L2 scenes: XCH4 (ppb) on a 25 m grid, the column mass converted to mole fraction with the
surface pressure (Jacob et al. 2016, ACP 16, 14371, eq. 1)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import xarray as xr

from attribution_assets.samples.geometry import downwind_point_xy, swath_xy
from attribution_assets.samples.plume import plume_column_kg_m2
from attribution_assets.samples.simulate import smooth_field
from attribution_assets.samples.truth import Event, Overpass
from attribution_assets.samples.weather import surface_pressure_pa
from attribution_assets.science.units import kg_m2_per_ppb
from attribution_assets.times import iso_z

GHGSAT_N = 240
GHGSAT_PIXEL_M = 25.0
GHGSAT_ROW_BEARING_DEG = 187.0
GHGSAT_BACKGROUND_PPB = 1900.0
GHGSAT_NOISE_PPB = 20.0
GHGSAT_DURATION_S = 12.0


def ghgsat_flags(rng: np.random.Generator) -> np.ndarray:
    """Quality flags: 0 good, 1 for ~0.4 % random pixels (retrieval), 2 in one small cloud disc."""
    flags = np.where(rng.random((GHGSAT_N, GHGSAT_N)) < 0.004, 1, 0).astype(np.uint8)
    cy, cx = rng.integers(20, 60), rng.integers(170, 210)
    yy, xx = np.mgrid[:GHGSAT_N, :GHGSAT_N]
    flags[(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] = 2
    return flags


def ghgsat_scene(ev: Event, op: Overpass, era5: xr.Dataset, rng: np.random.Generator) -> xr.Dataset:
    """GHGSat L2 carrier: 240 x 240 pixels of ~25 m, XCH4 (ppb) = background + plume + 20 ppb noise.

    The plume column (kg m-2) converts to ppb with the local surface pressure (``units.kg_m2_per_ppb``).
    Pixels flagged 2 (cloud) carry NaN.
    """
    centre = downwind_point_xy(ev, era5, op.time, 800.0)
    idx = np.arange(GHGSAT_N) - (GHGSAT_N - 1) / 2.0
    x, y = swath_xy(
        centre,
        idx[:, None],
        idx[None, :],
        GHGSAT_PIXEL_M,
        GHGSAT_PIXEL_M,
        GHGSAT_ROW_BEARING_DEG,
        GHGSAT_ROW_BEARING_DEG - 90.0,
    )
    lon, lat = ev.frame.to_lonlat(x, y)
    hours = ev.hours_utc(op.time)
    plume_ppb = plume_column_kg_m2(ev, op, lon, lat) / kg_m2_per_ppb(
        surface_pressure_pa(ev, lon, lat, hours), "CH4"
    )
    background = GHGSAT_BACKGROUND_PPB + 0.8e-3 * x - 0.5e-3 * y
    precision = GHGSAT_NOISE_PPB * (1.0 + 0.08 * smooth_field(rng, x.shape, 10.0))
    flags = ghgsat_flags(rng)
    noise = precision * rng.standard_normal(x.shape) + np.where(flags == 1, 60.0, 0.0) * rng.standard_normal(
        x.shape
    )
    xch4 = np.where(flags == 2, np.nan, background + plume_ppb + noise)
    dims = ("y", "x")
    return xr.Dataset(
        {
            "xch4": (dims, xch4.astype(np.float32), {"units": "ppb", "long_name": "column-averaged CH4"}),
            "xch4_precision": (
                dims,
                precision.astype(np.float32),
                {"units": "ppb", "long_name": "XCH4 precision"},
            ),
            "quality_flag": (dims, flags, {"units": "1", "long_name": "quality flag, 0 = good"}),
            "latitude": (dims, lat.astype(np.float32), {"units": "degrees_north", "long_name": "latitude"}),
            "longitude": (dims, lon.astype(np.float32), {"units": "degrees_east", "long_name": "longitude"}),
        },
        attrs={
            "instrument": "GHGSAT",
            "time_coverage_start": iso_z(op.time),
            "time_coverage_end": iso_z(op.time + timedelta(seconds=GHGSAT_DURATION_S)),
        },
    )
