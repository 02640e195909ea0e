"""OCO-2 L2 Lite scenes: one ascending track of 8-footprint frames crossing the CO2 plume downwind, the
column mass converted to mole fraction with the surface pressure (Jacob et al. 2016, ACP 16, 14371, eq. 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import gaussian_filter1d

from attribution_assets.samples.geometry import downwind_point_xy, sun_synchronous_heading_deg, swath_xy
from attribution_assets.samples.plume import plume_column_kg_m2
from attribution_assets.samples.truth import Event, Overpass
from attribution_assets.samples.weather import elevation_m, surface_pressure_pa, wind10_m_s
from attribution_assets.science.units import kg_m2_per_ppm
from attribution_assets.times import to_datetime64

OCO2_INCLINATION_DEG = 98.2
OCO2_FRAME_M = 2250.0
OCO2_FOOTPRINT_M = 1290.0
OCO2_N_FOOTPRINTS = 8
OCO2_FRAME_S = 0.333
OCO2_HALF_FRAMES = 480
"""Frames either side of the track crossing: +-1080 km of orbit, about +-10 degrees of latitude."""
OCO2_LOCAL_FRAMES = 40
"""Frames either side of the crossing kept clear of clouds (+-90 km around the target)."""
OCO2_TRACK_DOWNWIND_M = 10_000.0
OCO2_BACKGROUND_PPM = 415.0
OCO2_NOISE_PPM = 0.5
OCO2_ORBIT = 58573
OCO2_SUBSAMPLES = (5, 9)
"""Quadrature points across x along each footprint for the footprint-mean plume."""
N_OCO2_LEVELS = 20


def oco2_frames(rng: np.random.Generator) -> np.ndarray:
    """Frame indices kept along the orbit: all within ``OCO2_LOCAL_FRAMES``, ~40 % elsewhere (cloud gaps)."""
    frames = np.arange(-OCO2_HALF_FRAMES, OCO2_HALF_FRAMES + 1)
    clear = gaussian_filter1d(rng.standard_normal(frames.size), 6.0)
    keep = (np.abs(frames) <= OCO2_LOCAL_FRAMES) | (clear > np.quantile(clear, 0.6))
    return frames[keep]


def footprint_mean_column_kg_m2(
    ev: Event, op: Overpass, centre: np.ndarray, frames: np.ndarray, footprints: np.ndarray, heading: float
) -> np.ndarray:
    """Mean true plume (kg m-2) over each footprint parallelogram (regular sub-sample quadrature)."""
    n_c, n_a = OCO2_SUBSAMPLES
    sub_c = (np.arange(n_c) + 0.5) / n_c - 0.5
    sub_a = (np.arange(n_a) + 0.5) / n_a - 0.5
    rows = frames[:, None, None] + sub_a[None, None, :]
    cols = (footprints - 4.5)[:, None, None] + sub_c[None, :, None]
    x, y = swath_xy(centre, rows, cols, OCO2_FRAME_M, OCO2_FOOTPRINT_M, heading, heading + 90.0)
    lon, lat = ev.frame.to_lonlat(x, y)
    return plume_column_kg_m2(ev, op, lon, lat).mean(axis=(1, 2))


def oco2_level_fields(psurf_hpa: np.ndarray) -> dict[str, tuple[tuple[str, str], np.ndarray, dict[str, str]]]:
    """Per-level a-priori profile, pressure levels, pressure weights and averaging kernel (20 levels)."""
    sigma = np.linspace(0.0, 1.0, N_OCO2_LEVELS)
    levels = np.maximum(psurf_hpa[:, None] * sigma[None, :], 0.1)
    weight = np.gradient(sigma) / np.gradient(sigma).sum()
    apriori = 414.0 - 6.0 * np.clip(0.25 - sigma, 0.0, None) / 0.25
    kernel = 0.55 + 0.45 * np.sin(np.pi * np.clip(sigma, 0.05, 1.0) * 0.5) ** 0.6
    dims = ("sounding", "level")
    n = psurf_hpa.size
    return {
        "pressure_levels": (dims, levels, {"units": "hPa", "long_name": "pressure levels"}),
        "pressure_weight": (
            dims,
            np.broadcast_to(weight, (n, N_OCO2_LEVELS)),
            {"units": "1", "long_name": "pressure weight"},
        ),
        "co2_profile_apriori": (
            dims,
            np.broadcast_to(apriori, (n, N_OCO2_LEVELS)),
            {"units": "ppm", "long_name": "a-priori CO2 profile"},
        ),
        "xco2_averaging_kernel": (
            dims,
            np.broadcast_to(kernel, (n, N_OCO2_LEVELS)),
            {"units": "1", "long_name": "xco2 averaging kernel"},
        ),
    }


def oco2_sounding_ids(times: np.ndarray, footprints: np.ndarray) -> np.ndarray:
    """``YYYYMMDDhhmmss`` x 100 + tenths of a second x 10 + footprint, int64."""
    stamps = pd.DatetimeIndex(times)
    parts = [
        np.asarray(getattr(stamps, name), dtype=np.int64)
        for name in ("year", "month", "day", "hour", "minute", "second")
    ]
    whole = np.zeros(len(stamps), dtype=np.int64)
    for part, width in zip(parts, (10**10, 10**8, 10**6, 10**4, 100, 1), strict=True):
        whole += part * width
    tenths = np.asarray(stamps.microsecond, dtype=np.int64) // 100_000
    return whole * 100 + tenths * 10 + footprints.astype(np.int64)


def oco2_scene(ev: Event, op: Overpass, era5: xr.Dataset, rng: np.random.Generator) -> xr.Dataset:
    """OCO-2 Lite carrier: one ascending track crossing the plume ``OCO2_TRACK_DOWNWIND_M`` downwind.

    ``xco2 = 415 ppm + 0.15 ppm/deg latitude gradient + footprint-mean plume (kg m-2 -> ppm with the
    surface pressure) + noise``; ~8 % of soundings are flagged (``xco2_quality_flag`` 1) and get extra
    scatter.
    """
    heading = sun_synchronous_heading_deg(ev.source_lat, OCO2_INCLINATION_DEG)
    centre = downwind_point_xy(ev, era5, op.time, OCO2_TRACK_DOWNWIND_M)
    frames = oco2_frames(rng)
    frames = np.repeat(frames, OCO2_N_FOOTPRINTS)
    footprints = np.tile(np.arange(1, OCO2_N_FOOTPRINTS + 1), frames.size // OCO2_N_FOOTPRINTS)
    keep = rng.random(frames.size) > 0.05
    frames, footprints = frames[keep], footprints[keep]
    args = (OCO2_FRAME_M, OCO2_FOOTPRINT_M, heading, heading + 90.0)
    lon, lat = ev.frame.to_lonlat(*swath_xy(centre, frames, footprints - 4.5, *args))
    v_lon, v_lat = ev.frame.to_lonlat(
        *swath_xy(
            centre,
            frames[:, None] + np.array([-0.5, -0.5, 0.5, 0.5]),
            (footprints - 4.5)[:, None] + np.array([-0.5, 0.5, 0.5, -0.5]),
            *args,
        )
    )
    times = to_datetime64(op.time) + np.rint(frames * OCO2_FRAME_S * 1000).astype("timedelta64[ms]")
    hours = ev.hours_utc(op.time) + frames * OCO2_FRAME_S / 3600.0
    sp = surface_pressure_pa(ev, lon, lat, hours)
    plume_ppm = footprint_mean_column_kg_m2(ev, op, centre, frames, footprints, heading) / kg_m2_per_ppm(
        sp, "CO2"
    )
    uncertainty = OCO2_NOISE_PPM * (0.85 + 0.3 * rng.random(frames.size))
    flag = (rng.random(frames.size) < 0.08).astype(np.int8)
    noise = uncertainty * rng.standard_normal(frames.size) + flag * 1.5 * rng.standard_normal(frames.size)
    xco2 = OCO2_BACKGROUND_PPM + 0.15 * (lat - ev.source_lat) + plume_ppm + noise
    psurf = sp / 100.0 + 0.7 * rng.standard_normal(frames.size)
    u10, v10 = wind10_m_s(ev, lon, lat, hours)
    s, sv = ("sounding",), ("sounding", "vertex")
    data = {
        "xco2": (s, xco2, {"units": "ppm", "long_name": "XCO2 (bias corrected)"}),
        "xco2_uncertainty": (s, uncertainty, {"units": "ppm", "long_name": "XCO2 1-sigma uncertainty"}),
        "xco2_quality_flag": (s, flag, {"units": "1", "long_name": "quality flag, 0 = good"}),
        "xco2_apriori": (
            s,
            np.full(frames.size, OCO2_BACKGROUND_PPM - 1.0),
            {"units": "ppm", "long_name": "a priori"},
        ),
        "vertex_latitude": (sv, v_lat, {"units": "degrees_north", "long_name": "footprint vertex latitude"}),
        "vertex_longitude": (sv, v_lon, {"units": "degrees_east", "long_name": "footprint vertex longitude"}),
        "time": (s, times.astype("datetime64[ns]"), {"long_name": "sounding time (UTC)"}),
        "psurf": (s, psurf, {"units": "hPa", "long_name": "retrieved surface pressure"}),
        "psurf_apriori": (s, sp / 100.0, {"units": "hPa", "long_name": "a-priori surface pressure"}),
        "windspeed_u_met": (s, u10, {"units": "m s-1", "long_name": "10 m eastward wind"}),
        "windspeed_v_met": (s, v10, {"units": "m s-1", "long_name": "10 m northward wind"}),
        "orbit": (s, np.full(frames.size, OCO2_ORBIT, dtype=np.int32), {"units": "1", "long_name": "orbit"}),
        "footprint": (s, footprints.astype(np.int8), {"units": "1", "long_name": "footprint (1-8)"}),
        "operation_mode": (s, np.zeros(frames.size, dtype=np.int8), {"units": "1", "long_name": "0 = nadir"}),
        "sounding_id": (s, oco2_sounding_ids(times, footprints), {"units": "1", "long_name": "sounding id"}),
        "altitude": (s, elevation_m(ev, lon, lat), {"units": "m", "long_name": "surface altitude"}),
        "land_fraction": (s, np.full(frames.size, 100.0), {"units": "%", "long_name": "land fraction"}),
        **oco2_level_fields(psurf),
    }
    coords = {
        "latitude": (s, lat, {"units": "degrees_north", "long_name": "sounding latitude"}),
        "longitude": (s, lon, {"units": "degrees_east", "long_name": "sounding longitude"}),
    }
    attrs = {
        "instrument": "OCO2",
        "time_coverage_start": str(times.min().astype("datetime64[s]")) + "Z",
        "time_coverage_end": str(times.max().astype("datetime64[s]")) + "Z",
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
