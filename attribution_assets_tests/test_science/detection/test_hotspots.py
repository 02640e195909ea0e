"""TROPOMI hotspot scan: robust regional background, significance, clusters."""

from __future__ import annotations

import numpy as np
import xarray as xr

from attribution_assets.science.detection.hotspots import HotspotConfig, scan_tropomi_hotspots
from attribution_assets.science.sphere import haversine_km

DLAT = 7.0 / 111.2  # ~7 km along track
LAT0, LON0 = 38.0, 54.0
DLON = 5.5 / (111.2 * np.cos(np.radians(LAT0)))  # ~5.5 km across track


def _granule(seed: int, plume: tuple[float, float, float] | None = None, shape=(50, 60)) -> xr.Dataset:
    """Regular 5.5 x 7 km pixel grid: gradient + 12 ppb noise (+ Gaussian plume: lon, lat, peak ppb)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    lat = (LAT0 + rows * DLAT).ravel()
    lon = (LON0 + cols * DLON).ravel()
    xch4 = 1900.0 + 0.3 * rows.ravel() - 0.2 * cols.ravel() + rng.normal(0.0, 12.0, lat.size)
    if plume is not None:
        plon, plat, peak = plume
        r2 = ((lon - plon) / (1.2 * DLON)) ** 2 + ((lat - plat) / (1.2 * DLAT)) ** 2
        xch4 = xch4 + peak * np.exp(-0.5 * r2)
    qa = np.where(rng.uniform(size=lat.size) < 0.1, 0.3, 1.0)  # 10 % bad pixels
    time = np.datetime64("2025-07-21T08:30:00", "ns") + (rows.ravel() * 1e9).astype("timedelta64[ns]")
    return xr.Dataset(
        {
            "xch4": ("pixel", xch4),
            "xch4_precision": ("pixel", np.full(lat.size, 10.0)),
            "qa_value": ("pixel", qa),
        },
        coords={"latitude": ("pixel", lat), "longitude": ("pixel", lon), "time": ("pixel", time)},
    )


def test_plume_found_within_one_pixel():
    plon, plat = LON0 + 31.3 * DLON, LAT0 + 22.6 * DLAT
    result = scan_tropomi_hotspots(_granule(1, (plon, plat, 60.0)))
    assert result.status == "scanned"
    best = result.candidates.iloc[0]
    assert abs(best["longitude"] - plon) < DLON and abs(best["latitude"] - plat) < DLAT
    assert best["n_pixels"] >= 2 and 30.0 < best["peak_enhancement_ppb"] < 100.0
    assert best["time"].tz is not None
    assert len(result.candidates) == 1
    assert (result.pixel["cluster"] == 0).sum() == best["n_pixels"]


def test_pure_noise_gives_no_candidate():
    for seed in range(5):
        result = scan_tropomi_hotspots(_granule(10 + seed))
        assert result.status == "scanned" and result.candidates.empty, seed


def test_single_hot_pixel_is_not_a_cluster_and_bad_pixels_ignored():
    ds = _granule(3)
    xch4 = ds["xch4"].values.copy()
    xch4[1234] += 200.0  # one isolated very hot pixel
    bad = np.flatnonzero(ds["qa_value"].values < 0.5)
    xch4[bad[:30]] += 300.0  # bad-quality pixels must not count
    result = scan_tropomi_hotspots(ds.assign(xch4=("pixel", xch4)))
    assert result.candidates.empty
    assert result.pixel["significance"].max() > 10  # the hot pixel itself is significant


def test_too_few_pixels_is_an_outcome():
    ds = _granule(4, shape=(3, 5))
    assert scan_tropomi_hotspots(ds).status == "too_few_pixels"
    assert scan_tropomi_hotspots(ds.isel(pixel=slice(0, 0))).candidates.empty
    assert scan_tropomi_hotspots(ds, HotspotConfig(min_good_pixels=5)).status == "scanned"


def _generated_granule(rate_kg_h: float, seed: int) -> tuple[xr.Dataset, tuple[float, float]]:
    """TROPOMI subset of the Korpezhe sample event (3 m/s) with the source emitting ``rate_kg_h``."""
    from dataclasses import replace

    from attribution_assets.samples.simulate.tropomi import tropomi_scene
    from attribution_assets.samples.truth import load_events, load_overpasses
    from attribution_assets.samples.weather import era5_dataset

    event = next(e for e in load_events() if e.event_id == "korpezhe-ch4")
    op = next(
        o for o in load_overpasses() if o.event_id == event.event_id and o.instrument == "TROPOMI"
    )
    ds = tropomi_scene(
        replace(event, emission_rate_kg_h=rate_kg_h),
        op,
        era5_dataset(event),
        np.random.default_rng(seed),
    )
    return ds, (event.source_lon, event.source_lat)


def test_generated_hotspot_is_found_at_its_source_and_null_granules_stay_empty():
    # Seeds 300-302: disjoint from the 100-115 used to choose the smoothing and thresholds.
    for seed in (300, 301, 302):
        ds, (slon, slat) = _generated_granule(40_000.0, seed)
        result = scan_tropomi_hotspots(ds)
        assert len(result.candidates) >= 1, seed
        best = result.candidates.iloc[0]
        # The largest enhancement is in the source pixel or the next one downwind (<= 2 pixel spacings).
        assert haversine_km(slon, slat, best["longitude"], best["latitude"]) < 15.0
        assert (
            best["peak_enhancement_ppb"] > 30.0 and best["significance"] >= HotspotConfig().min_significance
        )
        null, _ = _generated_granule(0.0, seed)
        assert scan_tropomi_hotspots(null).candidates.empty, seed
