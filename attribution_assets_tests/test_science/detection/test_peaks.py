"""OCO-2 along-track peak scan (Gaussian + linear background in a sliding window)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from attribution_assets.science.detection.peaks import emission_kg_s, line_density_kg_m, scan_oco2_peaks
from attribution_assets.science.detection.track_fit import PeakScanConfig, fit_track, select_peaks
from attribution_assets.science.sphere import haversine_km

NOISE_PPM = 0.5
SPACING_KM = 0.3


def _track(n: int, seed: int, lat0: float = 20.0, lon0: float = 30.0) -> tuple[np.ndarray, ...]:
    """Soundings along a north-going meridian: (distance_km, lon, lat, noise-only xco2)."""
    rng = np.random.default_rng(seed)
    d = np.sort(rng.uniform(0.0, n * SPACING_KM, n))
    lat = lat0 + d / (np.pi * 6371.0088 / 180.0)
    lon = np.full(n, lon0) + rng.normal(0, 1e-3, n)
    y = 410.0 + 0.002 * d + rng.normal(0.0, NOISE_PPM, n)
    return d, lon, lat, y


def _carrier(lon, lat, xco2, orbit=1, flag=None, start="2025-06-10T12:00:00") -> xr.Dataset:
    n = xco2.size
    order = np.argsort(lat)
    time = np.datetime64(start, "ns") + (np.arange(n) * 40_000_000).astype("timedelta64[ns]")
    t = np.empty(n, dtype="datetime64[ns]")
    t[order] = time
    return xr.Dataset(
        {
            "xco2": ("sounding", xco2),
            "xco2_uncertainty": ("sounding", np.full(n, NOISE_PPM)),
            "xco2_quality_flag": ("sounding", np.zeros(n, np.int8) if flag is None else flag),
            "psurf": ("sounding", np.full(n, 1013.25)),
            "windspeed_u_met": ("sounding", np.full(n, 4.0)),
            "windspeed_v_met": ("sounding", np.full(n, 1.0)),
            "orbit": ("sounding", np.full(n, orbit)),
        },
        coords={"latitude": ("sounding", lat), "longitude": ("sounding", lon), "time": ("sounding", t)},
    )


def test_injected_peaks_recovered_once_each_with_unbiased_amplitude():
    d, lon, lat, y = _track(12_000, seed=3)
    rng = np.random.default_rng(7)
    centres = np.arange(150.0, 3500.0, 220.0) + rng.uniform(-30, 30, 16)
    amps = rng.uniform(2.0, 4.0, centres.size)
    widths = rng.uniform(2.5, 7.0, centres.size)
    for c, a, s in zip(centres, amps, widths, strict=True):
        y = y + a * np.exp(-0.5 * ((d - c) / s) ** 2)
    result = scan_oco2_peaks(_carrier(lon, lat, y))
    peaks = result.peaks
    assert list(result.outcomes["status"]) == ["scanned"]
    along = haversine_km(lon[np.argmin(lat)], lat.min(), peaks["longitude"], peaks["latitude"])
    matched = [np.flatnonzero(np.abs(along - c) < 2.0 * s) for c, s in zip(centres, widths, strict=True)]
    assert np.mean([m.size == 1 for m in matched]) >= 0.9  # recall, exactly one detection per peak
    assert sum(m.size for m in matched) == len(peaks)  # no spurious or duplicate detections
    for m, a in zip(matched, amps, strict=True):
        if m.size == 1:
            row = peaks.iloc[m[0]]
            assert abs(row["amplitude_ppm"] - a) <= 2.0 * row["amplitude_sd_ppm"] + 0.05
    assert peaks["significance"].min() >= PeakScanConfig().min_significance
    assert (peaks["time"].dt.tz is not None) and (peaks["orbit"] == 1).all()
    # Emission: line density x wind perpendicular to a north-going track (u = 4 m/s east).
    row = peaks.iloc[0]
    assert row["wind_perpendicular_m_s"] == pytest.approx(4.0, rel=0.02)
    assert row["emission_kg_h"] == pytest.approx(row["line_density_kg_m"] * 4.0 * 3600, rel=0.02)


def test_pure_noise_false_alarm_rate():
    detections, soundings = 0, 0
    for seed in range(3):
        d, lon, lat, y = _track(10_000, seed=100 + seed)
        fit = fit_track(d, y, np.full(d.size, NOISE_PPM))
        detections += select_peaks(fit).size
        soundings += d.size
    assert detections <= soundings / 1e4


def test_gaps_short_tracks_and_quality_flags_are_outcomes_not_errors():
    d, lon, lat, y = _track(3000, seed=5)
    y = y + 3.0 * np.exp(-0.5 * ((d - 450.0) / 4.0) ** 2)
    flag = np.zeros(d.size, np.int8)
    flag[(d > 440) & (d < 460)] = 1  # the peak is flagged bad: it must not be detected
    gap = (d > 200) & (d < 260)  # a 60 km gap splits the track into two segments
    ds = _carrier(lon[~gap], lat[~gap], y[~gap], flag=flag[~gap])
    short = _carrier(lon[:10], lat[:10] + 5.0, y[:10], orbit=2)
    result = scan_oco2_peaks(xr.concat([ds, short], dim="sounding"))
    assert result.peaks.empty
    out = result.outcomes.set_index(["orbit", "segment"])["status"]
    assert out[(1, 0)] == "scanned" and out[(1, 1)] == "scanned"
    assert out[(2, 0)] == "too_few_soundings"
    empty = scan_oco2_peaks(ds.isel(sounding=slice(0, 0)))
    assert empty.peaks.empty and list(empty.outcomes["status"]) == ["too_few_soundings"]
    # With the flag cleared the same peak is found exactly once, on the second segment.
    found = scan_oco2_peaks(_carrier(lon[~gap], lat[~gap], y[~gap])).peaks
    assert len(found) == 1 and abs(found["amplitude_ppm"].iloc[0] - 3.0) < 0.5


def test_start_of_a_clear_stretch_does_not_fake_a_peak():
    # A strong peak 45 km into the stretch: windows centred near the start see it on one side only.
    hits = 0
    for seed in range(4):
        d, lon, lat, y = _track(700, seed=20 + seed)
        y = y + 4.0 * np.exp(-0.5 * ((d - 45.0) / 6.0) ** 2)
        fit = fit_track(d, y, np.full(d.size, NOISE_PPM))
        chosen = select_peaks(fit)
        hits += int(np.sum(np.abs(fit.centre_km[chosen] - 45.0) <= 12.0))
        assert np.all(np.abs(fit.centre_km[chosen] - 45.0) <= 12.0), fit.centre_km[chosen]
        assert not fit.valid[fit.centre_km < PeakScanConfig().min_side_km].any()
    assert hits == 4


def test_window_with_central_gap_is_invalid():
    d = np.concatenate([np.arange(0.0, 95.0, 0.3), np.arange(105.0, 200.0, 0.3)])
    fit = fit_track(d, 410.0 + np.zeros_like(d), np.full(d.size, 0.5))
    near_gap = np.abs(fit.centre_km - 100.0) < 2.0
    assert not fit.valid[near_gap].any() and fit.valid.any()


def test_line_density_and_emission_units():
    # 1 ppm·km at 1013 hPa ~ 15.7 kg/m (oco2peak factor).
    assert line_density_kg_m(1.0, 1013.0) == pytest.approx(15.7, rel=0.01)
    assert line_density_kg_m(1.0, 1013.0, 30.0) < line_density_kg_m(1.0, 1013.0)
    # Wind along the track carries nothing across it.
    assert emission_kg_s(100.0, 0.0, 5.0, 0.0, 1.0) == pytest.approx(0.0)
    assert emission_kg_s(100.0, 3.0, 4.0, 0.0, 1.0) == pytest.approx(300.0)
