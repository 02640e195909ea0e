"""TROPOMI L2 CH4 scenes: pixels average a ~100 m fine-grid plume inside each pixel polygon and apply the
column averaging kernel operator of Hasekamp et al. (2019, ATBD SRON-S5P-LEV2-RP-001, eq. 46)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import xarray as xr
from matplotlib.path import Path as PolygonPath

from attribution_assets.samples.geometry import cos_solar_zenith, sun_synchronous_heading_deg, swath_xy
from attribution_assets.samples.plume import plume_column_xy_kg_m2
from attribution_assets.samples.simulate import smooth_field
from attribution_assets.samples.truth import Event, Overpass
from attribution_assets.samples.weather import (
    SCALE_HEIGHT_M,
    boundary_layer_height_m,
    elevation_m,
    surface_pressure_pa,
    wind10_m_s,
)
from attribution_assets.science.units import G_M_S2, M_AIR_KG_MOL, M_CH4_KG_MOL
from attribution_assets.times import iso_z, to_datetime64

TROPOMI_N_SCANLINES = 40
TROPOMI_N_GROUND_PIXELS = 30
TROPOMI_ALONG_M = 5500.0
TROPOMI_ACROSS_M = 7000.0
TROPOMI_INCLINATION_DEG = 98.74
TROPOMI_SCANLINE_S = 0.84
TROPOMI_FIRST_SCANLINE = 2160
TROPOMI_FIRST_GROUND_PIXEL = 92
TROPOMI_SOURCE_OFFSET = (1.35, -0.9)
"""Source position (scanlines, ground pixels) from the subset centre: off-centre in both directions."""
TROPOMI_BACKGROUND_PPB = 1925.0
TROPOMI_NOISE_PPB = 10.0
TROPOMI_FINE_M = 100.0
TROPOMI_CLEAR_RADIUS_M = 30_000.0
"""Pixels centred this close to the source are kept cloud-free (qa_value 1.0)."""
N_LAYERS = 12
APRIORI_PPB = np.array([1890, 1890, 1889, 1888, 1886, 1883, 1878, 1870, 1852, 1805, 1690, 1330], dtype=float)
"""A-priori CH4 dry mole fraction per layer (index 0 = surface), ppb: troposphere to stratosphere."""
AVERAGING_KERNEL = np.array([0.88, 0.92, 0.95, 0.98, 1.00, 1.02, 1.03, 1.04, 1.04, 1.03, 1.00, 0.94])
"""Column averaging kernel shape per layer (index 0 = surface) for a SWIR full-physics retrieval."""
S5P_ORBIT_EPOCH = datetime(2017, 10, 13, 0, 0, tzinfo=UTC)
S5P_ORBIT_MIN = 100.9


def tropomi_orbit(when: datetime) -> int:
    """Approximate absolute S5P orbit number (launch epoch, 100.9 min period)."""
    return 1 + int((when - S5P_ORBIT_EPOCH).total_seconds() // (S5P_ORBIT_MIN * 60.0))


def tropomi_geometry(ev: Event) -> dict[str, np.ndarray]:
    """Pixel centres and corner bounds (lon, lat) of the 40 x 30 subset, flattened to ``pixel``."""
    heading = sun_synchronous_heading_deg(ev.source_lat, TROPOMI_INCLINATION_DEG)
    r_off, c_off = TROPOMI_SOURCE_OFFSET
    centre = np.array(
        swath_xy(
            ev.source_xy_m,
            np.float64(-r_off),
            np.float64(-c_off),
            TROPOMI_ALONG_M,
            TROPOMI_ACROSS_M,
            heading,
            heading + 90.0,
        )
    )
    rows = np.arange(TROPOMI_N_SCANLINES) - (TROPOMI_N_SCANLINES - 1) / 2.0
    cols = np.arange(TROPOMI_N_GROUND_PIXELS) - (TROPOMI_N_GROUND_PIXELS - 1) / 2.0
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    rr, cc = rr.ravel(), cc.ravel()
    corner_r = rr[:, None] + np.array([-0.5, -0.5, 0.5, 0.5])
    corner_c = cc[:, None] + np.array([-0.5, 0.5, 0.5, -0.5])
    args = (TROPOMI_ALONG_M, TROPOMI_ACROSS_M, heading, heading + 90.0)
    lon, lat = ev.frame.to_lonlat(*swath_xy(centre, rr, cc, *args))
    lon_b, lat_b = ev.frame.to_lonlat(*swath_xy(centre, corner_r, corner_c, *args))
    scan_idx = np.arange(TROPOMI_N_SCANLINES).repeat(TROPOMI_N_GROUND_PIXELS)
    gp_idx = np.tile(np.arange(TROPOMI_N_GROUND_PIXELS), TROPOMI_N_SCANLINES)
    return {
        "lon": lon,
        "lat": lat,
        "lon_bounds": lon_b,
        "lat_bounds": lat_b,
        "scan_idx": scan_idx,
        "gp_idx": gp_idx,
    }


def polygon_mean_column_kg_m2(
    ev: Event, op: Overpass, lon_bounds: np.ndarray, lat_bounds: np.ndarray
) -> np.ndarray:
    """Mean of the true plume (kg m-2) inside each pixel polygon, shape ``(pixel,)``.

    The plume is rasterised on a regular ``TROPOMI_FINE_M`` (100 m) grid of the local frame over the whole
    subset; each pixel averages the grid cells whose centres fall inside its corner polygon
    (``matplotlib.path``; corners projected to the local frame).
    """
    out = np.zeros(lon_bounds.shape[0])
    if ev.emission_rate_kg_h <= 0.0:
        return out
    cx, cy = ev.frame.to_xy(lon_bounds, lat_bounds)
    d = TROPOMI_FINE_M
    x_f = np.arange(np.floor(cx.min() / d) * d, cx.max() + d, d)
    y_f = np.arange(np.floor(cy.min() / d) * d, cy.max() + d, d)
    gx, gy = np.meshgrid(x_f, y_f)
    field = plume_column_xy_kg_m2(ev, op, gx, gy)
    for p in range(lon_bounds.shape[0]):
        i0, i1 = np.searchsorted(y_f, [cy[p].min(), cy[p].max()])
        j0, j1 = np.searchsorted(x_f, [cx[p].min(), cx[p].max()])
        sub = field[i0:i1, j0:j1]
        if not np.any(sub > 0.0):
            continue
        points = np.column_stack([gx[i0:i1, j0:j1].ravel(), gy[i0:i1, j0:j1].ravel()])
        inside = PolygonPath(np.column_stack([cx[p], cy[p]])).contains_points(points)
        out[p] = float(sub.ravel()[inside].mean())
    return out


def boundary_layer_weights(surface_pressure: np.ndarray, blh_m: np.ndarray) -> np.ndarray:
    """Share of a surface release in each of the 12 equal-pressure layers, ``(pixel, layer)``, 0 = surface.

    The enhancement fills the boundary layer (top at ``p_s exp(-blh / 8400 m)``) in proportion to the dry-air
    sub-columns, i.e. to the pressure thickness of each layer below the boundary-layer top.
    """
    dp = surface_pressure[:, None] / N_LAYERS
    p_top = surface_pressure[:, None] * np.exp(-blh_m[:, None] / SCALE_HEIGHT_M)
    layer_bottom = surface_pressure[:, None] - np.arange(N_LAYERS)[None, :] * dp
    overlap = np.clip((layer_bottom - p_top) / dp, 0.0, 1.0)
    return overlap / overlap.sum(axis=1, keepdims=True)


def tropomi_operator_ppb(
    column_kg_m2: np.ndarray, averaging_kernel: np.ndarray, dry_air: np.ndarray, bl_weights: np.ndarray
) -> np.ndarray:
    """Retrieved XCH4 enhancement ``1e9 sum_k A_k dx_k / sum_k n_dry,k`` (ppb), Hasekamp et al. 2019, eq. 46.

    ``dx_k = Omega / M_CH4 * w_k`` (mol m-2) distributes the column in the boundary-layer layers.
    """
    dx = (column_kg_m2 / M_CH4_KG_MOL)[:, None] * bl_weights
    return 1e9 * np.sum(averaging_kernel * dx, axis=1) / np.sum(dry_air, axis=1)


def tropomi_scene(ev: Event, op: Overpass, era5: xr.Dataset, rng: np.random.Generator) -> xr.Dataset:
    """TROPOMI L2 CH4 subset carrier (all pixels, including ``qa_value`` 0.4 ones), layer 0 = surface."""
    geo = tropomi_geometry(ev)
    n = geo["lon"].size
    times = (
        np.array(
            [
                to_datetime64(op.time + timedelta(seconds=TROPOMI_SCANLINE_S * (s - 20)))
                for s in range(TROPOMI_N_SCANLINES)
            ]
        )
        .astype("datetime64[ms]")
        .astype("datetime64[ns]")
    )
    hours = ev.hours_utc(op.time)
    ps = surface_pressure_pa(ev, geo["lon"], geo["lat"], hours)
    dry_air = np.repeat((ps / (G_M_S2 * M_AIR_KG_MOL) / N_LAYERS)[:, None], N_LAYERS, axis=1)
    albedo = 0.25 + 0.04 * smooth_field(rng, (TROPOMI_N_SCANLINES, TROPOMI_N_GROUND_PIXELS), 3.0).ravel()
    ak = 1.0 + (AVERAGING_KERNEL[None, :] - 1.0) * (1.0 - 2.0 * (albedo[:, None] - 0.25))
    omega = polygon_mean_column_kg_m2(ev, op, geo["lon_bounds"], geo["lat_bounds"])
    bl = boundary_layer_weights(ps, boundary_layer_height_m(ev, geo["lon"], hours))
    x_pix, y_pix = ev.frame.to_xy(geo["lon"], geo["lat"])
    background = (
        TROPOMI_BACKGROUND_PPB
        + 0.05e-3 * y_pix
        + 4.0 * smooth_field(rng, (TROPOMI_N_SCANLINES, TROPOMI_N_GROUND_PIXELS), 4.0).ravel()
    )
    precision = TROPOMI_NOISE_PPB * (0.9 + 0.2 * rng.random(n))
    xch4 = background + tropomi_operator_ppb(omega, ak, dry_air, bl) + precision * rng.standard_normal(n)
    cloudy = smooth_field(rng, (TROPOMI_N_SCANLINES, TROPOMI_N_GROUND_PIXELS), 2.0).ravel() > 1.3
    near_source = np.hypot(x_pix - ev.source_xy_m[0], y_pix - ev.source_xy_m[1]) < TROPOMI_CLEAR_RADIUS_M
    qa = np.where(cloudy & ~near_source, 0.4, 1.0)
    u10, v10 = wind10_m_s(ev, geo["lon"], geo["lat"], hours)
    mu0 = cos_solar_zenith(geo["lon"], geo["lat"], op.time)
    pix, lay, cor = ("pixel",), ("pixel", "layer"), ("pixel", "corner")
    data = {
        "xch4": (pix, xch4, {"units": "ppb", "long_name": "bias-corrected XCH4"}),
        "xch4_precision": (pix, precision, {"units": "ppb", "long_name": "XCH4 precision"}),
        "qa_value": (pix, qa, {"units": "1", "long_name": "quality assurance value"}),
        "latitude_bounds": (
            cor,
            geo["lat_bounds"],
            {"units": "degrees_north", "long_name": "corner latitude"},
        ),
        "longitude_bounds": (
            cor,
            geo["lon_bounds"],
            {"units": "degrees_east", "long_name": "corner longitude"},
        ),
        "column_averaging_kernel": (lay, ak, {"units": "1", "long_name": "column averaging kernel"}),
        "methane_profile_apriori": (
            lay,
            dry_air * APRIORI_PPB[None, :] * 1e-9,
            {"units": "mol m-2", "long_name": "a-priori CH4 sub-columns"},
        ),
        "dry_air_subcolumns": (lay, dry_air, {"units": "mol m-2", "long_name": "dry-air sub-columns"}),
        "surface_pressure": (pix, ps, {"units": "Pa", "long_name": "surface pressure"}),
        "pressure_interval": (pix, ps / N_LAYERS, {"units": "Pa", "long_name": "layer pressure thickness"}),
        "time": (pix, times[geo["scan_idx"]], {"long_name": "measurement time (UTC)"}),
        "surface_altitude": (
            pix,
            elevation_m(ev, geo["lon"], geo["lat"]),
            {"units": "m", "long_name": "altitude"},
        ),
        "solar_zenith_angle": (
            pix,
            np.rad2deg(np.arccos(mu0)),
            {"units": "degree", "long_name": "solar zenith"},
        ),
        "surface_albedo_SWIR": (pix, albedo, {"units": "1", "long_name": "SWIR surface albedo"}),
        "eastward_wind": (pix, u10, {"units": "m s-1", "long_name": "eastward 10 m wind"}),
        "northward_wind": (pix, v10, {"units": "m s-1", "long_name": "northward 10 m wind"}),
    }
    start = op.time - timedelta(minutes=47)
    coords = {
        "latitude": (pix, geo["lat"], {"units": "degrees_north", "long_name": "pixel centre latitude"}),
        "longitude": (pix, geo["lon"], {"units": "degrees_east", "long_name": "pixel centre longitude"}),
        "scanline": (pix, TROPOMI_FIRST_SCANLINE + geo["scan_idx"]),
        "ground_pixel": (pix, TROPOMI_FIRST_GROUND_PIXEL + geo["gp_idx"]),
    }
    attrs = {
        "instrument": "TROPOMI",
        "orbit": tropomi_orbit(op.time),
        "processor_version": "02.06.00",
        "time_coverage_start": iso_z(start),
        "time_coverage_end": iso_z(start + timedelta(minutes=S5P_ORBIT_MIN)),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
