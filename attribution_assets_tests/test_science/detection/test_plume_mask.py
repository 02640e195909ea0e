"""Plume masking on synthetic enhancement maps."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from attribution_assets.science.detection.plume_mask import plume_mask, robust_spread, significance_map
from attribution_assets.science.detection.plume_scan import (
    PlumeDetectionRule,
    emit_plume_candidates,
    plume_significance_map,
    plume_template,
)

SD_PPM_M = 100.0


def blob(shape, centre, amplitude, width_px):
    """Isotropic Gaussian enhancement, ppm·m."""
    rows, cols = np.indices(shape)
    r2 = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
    return amplitude * np.exp(-0.5 * r2 / width_px**2)


def noise(shape, seed):
    return np.random.default_rng(seed).normal(0.0, SD_PPM_M, shape)


def test_significance_of_pure_noise_is_standard_normal():
    enh = noise((300, 300), 0)
    sd = np.full(enh.shape, SD_PPM_M)
    for smoothing in (0.0, 1.5, 3.0):
        z = significance_map(enh, sd, smoothing)[20:-20, 20:-20]
        assert z.std() == pytest.approx(1.0, abs=0.05)
        assert abs(z.mean()) < 0.05


def test_single_blob_found_with_right_centre():
    shape, centre = (80, 100), (30, 45)
    enh = blob(shape, centre, 600.0, 4.0) + noise(shape, 1)
    enh[0, :5] = np.nan
    res = plume_mask(enh, np.full(shape, SD_PPM_M))
    assert res.detected and res.n_components == 1
    rows, cols = np.nonzero(res.mask)
    assert abs(rows.mean() - centre[0]) < 1.5 and abs(cols.mean() - centre[1]) < 1.5
    assert abs(res.max_index[0] - centre[0]) <= 3 and abs(res.max_index[1] - centre[1]) <= 3
    assert res.max_enhancement_ppm_m == pytest.approx(np.nanmax(np.where(res.mask, enh, np.nan)))
    # Area: the blob exceeds ~3 sigma of the smoothed noise out to a few widths.
    assert 50 < res.area_px < 1000
    assert res.polygon.area == pytest.approx(res.area_px)
    assert res.polygon.contains(shapely.Point(centre[1], centre[0]))


@pytest.mark.parametrize("seed", range(5))
def test_pure_noise_rejected(seed):
    enh = noise((120, 120), 10 + seed)
    res = plume_mask(enh, np.full(enh.shape, SD_PPM_M))
    assert not res.detected and res.n_components == 0
    assert not res.mask.any() and res.polygon is None and res.max_index is None


def test_point_selects_component_and_lonlat_polygon():
    shape = (90, 120)
    enh = blob(shape, (20, 20), 700.0, 3.0) + blob(shape, (60, 90), 500.0, 4.0) + noise(shape, 2)
    lon = -103.0 + 0.0005 * np.arange(shape[1])
    lat = 32.0 - 0.0005 * np.arange(shape[0])  # north-up: latitude decreases with row
    sd = np.full(shape, SD_PPM_M)
    default = plume_mask(enh, sd, lon=lon, lat=lat)
    assert default.n_components == 2
    near = plume_mask(enh, sd, point=(lon[85], lat[58]), lon=lon, lat=lat)
    rows, cols = np.nonzero(near.mask)
    assert abs(rows.mean() - 60) < 2 and abs(cols.mean() - 90) < 2
    assert near.polygon.contains(shapely.Point(lon[90], lat[60]))
    assert near.polygon.area == pytest.approx(near.area_px * 0.0005**2, rel=1e-6)
    assert near.max_lon == pytest.approx(lon[near.max_index[1]])
    assert near.max_lat == pytest.approx(lat[near.max_index[0]])
    by_pixel = plume_mask(enh, sd, point=(21.0, 19.0))
    rows, _ = np.nonzero(by_pixel.mask)
    assert abs(rows.mean() - 20) < 2


def test_robust_spread_leaves_white_noise_unscaled():
    background = noise((120, 120), 7)
    sd = np.full(background.shape, SD_PPM_M)
    assert robust_spread(significance_map(background, sd, 1.5)) == 1.0


def _plume_streak(shape, apex, length_px, per_px):
    """Uncompensated plume template of direction 0 (along +col) scaled to ``per_px`` on its axis."""
    t = plume_template(length_px, 0.0, flank_px=0.0)
    r = (t.shape[0] - 1) // 2
    field = np.zeros(shape)
    field[apex[0] - r : apex[0] + r + 1, apex[1] - r : apex[1] + r + 1] = t / t[r, r + 1] * per_px
    return field


def test_plume_template_shape():
    bare = plume_template(10.0, 0.0, flank_px=0.0)
    r = (bare.shape[0] - 1) // 2
    assert bare.sum() == pytest.approx(1.0)
    assert bare[:, : r - 1].sum() == 0.0  # nothing upwind of the apex
    # crosswind integral ~ constant downwind (Q / u): columns 2..10 px from the apex within 10 %
    slices = bare[:, r + 2 : r + 11].sum(axis=0)
    assert slices.max() / slices.min() < 1.1
    comp = plume_template(10.0, 0.0)
    assert comp.sum() == pytest.approx(0.0, abs=1e-12)
    assert comp[comp > 0].sum() == pytest.approx(1.0)  # the core (cut at 2.5 s(u) + 0.5 px), renormalised
    flanks = np.where(comp < 0, comp, 0.0)
    assert flanks.sum() == pytest.approx(-1.0) and np.unique(flanks[comp < 0]).size == 1  # uniform strips
    rc = (comp.shape[0] - 1) // 2
    assert flanks[rc - 2 : rc + 3, :].sum() == 0.0  # none within 2 px of the axis (2.5 s + 0.5 px = 2.0 px)
    rot = plume_template(10.0, np.pi / 2, flank_px=0.0)  # pointing along +row
    rr = (rot.shape[0] - 1) // 2
    assert rot[: rr - 1, :].sum() == 0.0 and rot[rr + 5, rr] > 0


def test_plume_significance_is_exact_on_a_noise_free_plume_and_cancels_smooth_surfaces():
    shape, apex = (80, 80), (40, 30)
    sd = np.full(shape, SD_PPM_M)
    plume = _plume_streak(shape, apex, 15.0, 2.0 * SD_PPM_M)
    z = plume_significance_map(plume, sd, lengths_px=(15.0,), flank_px=0.0)
    w = plume_template(15.0, 0.0, flank_px=0.0)
    r = (w.shape[0] - 1) // 2
    window = plume[apex[0] - r : apex[0] + r + 1, apex[1] - r : apex[1] + r + 1]
    expected = (w * window).sum() / (SD_PPM_M * np.sqrt((w**2).sum()))  # analytic matched-filter SNR
    assert np.unravel_index(np.nanargmax(z), shape) == apex
    assert z[apex] == pytest.approx(expected, rel=1e-9)
    # A uniform offset (a surface bias wider than the flanks) is invisible to the compensated template,
    # up to the image edges and around invalid pixels (the flank mean uses valid pixels only).
    flat = np.full(shape, 3.0 * SD_PPM_M)
    flat[10:20, 50:60] = np.nan
    z_flat = plume_significance_map(flat, sd)
    assert np.nanmax(np.abs(z_flat)) < 1e-6 and np.isfinite(z_flat[0, 0]) and np.isfinite(z_flat[15, 49])
    assert np.nanmax(plume_significance_map(flat, sd, flank_px=0.0)[25:-25, 25:-25]) > 10.0


def test_plume_candidate_sits_at_the_source():
    shape, apex = (120, 120), (60, 40)
    sd = np.full(shape, SD_PPM_M)
    enh = _plume_streak(shape, apex, 25.0, 3.0 * SD_PPM_M) + noise(shape, 11)
    rule = PlumeDetectionRule(threshold_sigma=6.0)
    found = emit_plume_candidates(enh, sd, lon=np.arange(120.0), lat=-np.arange(120.0), rule=rule)
    assert len(found) >= 1 and found["significance"].is_monotonic_decreasing
    assert abs(found["row"][0] - apex[0]) <= 1 and abs(found["col"][0] - apex[1]) <= 1
    assert found["longitude"][0] == found["col"][0] and found["latitude"][0] == -found["row"][0]
    assert found["max_enhancement_ppm_m"][0] > 3.0 * SD_PPM_M


@pytest.mark.parametrize("seed", [3, 4])
def test_plume_candidates_on_noise_and_invalid_maps(seed):
    shape = (150, 150)
    sd = np.full(shape, SD_PPM_M)
    assert emit_plume_candidates(noise(shape, seed), sd).empty  # 16 x 2 calibrated templates, 6.5 sigma
    empty = emit_plume_candidates(np.full(shape, np.nan), np.full(shape, np.nan))
    assert empty.empty and "significance" in empty.columns
