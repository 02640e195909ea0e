"""Matched filter on synthetic cubes with analytically known answers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.science.detection.matched_filter import (
    CH4_WINDOW_NM,
    GltIndex,
    MatchedFilterOptions,
    enhance_emit_scene,
    matched_filter,
    orthorectify,
    window_bands,
)
from attribution_assets.science.detection.matched_filter.column_statistics import (
    column_groups,
    column_moments,
)
from attribution_assets.science.detection.matched_filter.filter import update_significance
from attribution_assets.science.detection.matched_filter.shrinkage import loo_log_likelihood
from attribution_assets.science.detection.plume_mask import significance_map
from attribution_assets.science.forward.absorption import band_unit_absorption

K_HI = load_ch4_unit_absorption()
WAVELENGTH_NM = np.concatenate([[550.0, 850.0, 1050.0], np.arange(2100.0, 2500.0, 7.4)])
FWHM_NM = np.full(WAVELENGTH_NM.size, 8.5)
K_BAND = band_unit_absorption(*K_HI, WAVELENGTH_NM, FWHM_NM)
NOISE_SD = 0.0007  # uW cm-2 sr-1 nm-1, SNR ~ 150 in the SWIR
ALBEDO_RANGE = (0.7, 1.3)
PLUME_PPM_M = 1000.0


def mean_spectrum() -> np.ndarray:
    """Smooth SWIR radiance (uW cm-2 sr-1 nm-1) with background CH4 absorption; bright VNIR."""
    wl = WAVELENGTH_NM
    swir = 0.12 * (1.0 + 0.3 * np.sin(wl / 60.0)) * np.exp(K_BAND * 8000.0)
    return np.where(wl < 1300, 8.0, swir)


def noise_covariance() -> np.ndarray:
    """Known noise covariance: white noise plus a weak smooth correlated component."""
    b = WAVELENGTH_NM.size
    rho = np.exp(-np.abs(WAVELENGTH_NM[:, None] - WAVELENGTH_NM[None, :]) / 30.0)
    return NOISE_SD**2 * (np.eye(b) + 0.3 * rho)


def synthetic_cube(n_down: int, n_cross: int, plume: tuple[slice, slice] | None, seed: int):
    """``x = A mu exp(k alpha) + eps`` with eps ~ N(0, noise_covariance()); returns (x, alpha, A)."""
    rng = np.random.default_rng(seed)
    albedo = rng.uniform(*ALBEDO_RANGE, (n_down, n_cross))
    alpha = np.zeros((n_down, n_cross))
    if plume is not None:
        alpha[plume] = PLUME_PPM_M
    chol = np.linalg.cholesky(noise_covariance())
    eps = rng.standard_normal((n_down, n_cross, WAVELENGTH_NM.size)) @ chol.T
    x = albedo[..., None] * mean_spectrum() * np.exp(K_BAND * alpha[..., None]) + eps
    return x, alpha, albedo


def analytic_sd_ppm_m() -> float:
    """1/sqrt(t^T Sigma^-1 t) for the true background covariance (noise + albedo variability)."""
    idx = window_bands(WAVELENGTH_NM, CH4_WINDOW_NM)
    mu = mean_spectrum()[idx]
    var_albedo = (ALBEDO_RANGE[1] - ALBEDO_RANGE[0]) ** 2 / 12.0
    sigma = noise_covariance()[np.ix_(idx, idx)] + var_albedo * np.outer(mu, mu)
    t = K_BAND[idx] * mu
    return float(1.0 / np.sqrt(t @ np.linalg.solve(sigma, t)))


PLUME = (slice(400, 480), slice(2, 6))


@pytest.fixture(scope="module")
def plume_scene():
    return synthetic_cube(1000, 8, PLUME, seed=1)


@pytest.fixture(scope="module")
def both_passes(plume_scene):
    x = plume_scene[0]
    first = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI, MatchedFilterOptions(second_pass=False))
    second = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI, MatchedFilterOptions(second_pass=True))
    return first, second


def test_recovers_injected_enhancement(plume_scene, both_passes):
    _, alpha, _ = plume_scene
    res = both_passes[1]
    plume = alpha > 0
    assert res.valid.all()
    est, sd = res.enhancement_ppm_m, res.sd_ppm_m
    n_plume = plume.sum()
    # Linearisation of exp(k alpha) costs < 1.5 % at 1000 ppm·m; allow 3 standard errors besides.
    tol = 3.0 * sd[plume].mean() / np.sqrt(n_plume) + 0.015 * PLUME_PPM_M
    assert abs(est[plume].mean() - PLUME_PPM_M) < tol
    bg = ~plume
    assert abs(est[bg].mean()) < 5.0 * sd[bg].mean() / np.sqrt(bg.sum())
    assert est[bg].std() == pytest.approx(sd[bg].mean(), rel=0.2)
    assert sd[bg].mean() == pytest.approx(analytic_sd_ppm_m(), rel=0.2)
    # Standardised background residuals are ~N(0, 1).
    z = est[bg] / sd[bg]
    assert stats.kurtosis(z) == pytest.approx(0.0, abs=0.3)


def test_second_pass_reduces_plume_bias(both_passes):
    first, second = both_passes
    plume = np.zeros(first.valid.shape, dtype=bool)
    plume[PLUME] = True
    bias_first = first.enhancement_ppm_m[plume].mean() - PLUME_PPM_M
    bias_second = second.enhancement_ppm_m[plume].mean() - PLUME_PPM_M
    assert bias_first < -50.0  # the plume contaminates mean and covariance of its columns
    assert abs(bias_second) < 0.5 * abs(bias_first)
    bg_cols = np.zeros_like(plume)
    bg_cols[:, PLUME[1]] = True
    bg_cols &= ~plume
    assert abs(second.enhancement_ppm_m[bg_cols].mean()) < abs(first.enhancement_ppm_m[bg_cols].mean())
    assert second.plume_excluded[plume].mean() > 0.5
    assert not first.plume_excluded.any()


def test_second_pass_refits_only_columns_that_lose_plume_pixels():
    x, _, _ = synthetic_cube(600, 14, (slice(200, 260), slice(2, 5)), seed=10)
    first = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI, MatchedFilterOptions(second_pass=False))
    second = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI, MatchedFilterOptions(second_pass=True))
    touched = second.plume_excluded.any(axis=0)
    assert touched.any() and not touched.all()
    np.testing.assert_array_equal(second.enhancement_ppm_m[:, ~touched], first.enhancement_ppm_m[:, ~touched])
    np.testing.assert_array_equal(second.shrinkage[~touched], first.shrinkage[~touched])


def test_noise_exceedances_stay_in_the_statistics():
    x, _, _ = synthetic_cube(1000, 8, None, seed=9)
    first = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI, MatchedFilterOptions(second_pass=False))
    second = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI, MatchedFilterOptions(second_pass=True))
    assert (first.enhancement_ppm_m > 3 * first.sd_ppm_m).sum() > 0  # single-pixel 3-sigma exceedances exist
    assert not second.plume_excluded.any()
    np.testing.assert_array_equal(second.enhancement_ppm_m, first.enhancement_ppm_m)


def test_albedo_correction_removes_albedo_scaling(plume_scene):
    x, alpha, albedo = plume_scene
    plume = alpha > 0
    slopes = {}
    for correct in (True, False):
        res = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI, MatchedFilterOptions(albedo_correction=correct))
        slopes[correct] = np.polyfit(albedo[plume], res.enhancement_ppm_m[plume], 1)[0]
    # Without correction the filter returns ~ A * alpha (slope alpha in A); with it ~ alpha.
    assert slopes[False] == pytest.approx(PLUME_PPM_M, abs=250.0)
    assert abs(slopes[True]) < 250.0


def test_empty_column_is_nan_and_invalid():
    x, _, _ = synthetic_cube(300, 6, None, seed=2)
    x[:, 2, :] = np.nan
    x[10, 4, 50] = -9999.0
    res = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI)
    assert not res.valid[:, 2].any() and np.isnan(res.enhancement_ppm_m[:, 2]).all()
    assert np.isnan(res.sd_ppm_m[:, 2]).all()
    assert not res.valid[10, 4]
    assert res.valid[:, [0, 1, 3, 5]].all()


def test_all_fill_radiance_is_all_invalid():
    x = np.full((50, 4, WAVELENGTH_NM.size), -9999.0, dtype=np.float32)
    res = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI)
    assert not res.valid.any()
    assert np.isnan(res.enhancement_ppm_m).all() and np.isnan(res.sd_ppm_m).all()
    assert (res.column_group == -1).all() and res.shrinkage.size == 0


def test_short_columns_are_pooled_into_groups():
    n_band = window_bands(WAVELENGTH_NM, CH4_WINDOW_NM).size
    x, _, _ = synthetic_cube(60, 10, None, seed=3)  # 60 pixels per column < 2 x bands
    res = matched_filter(x.astype(np.float32), WAVELENGTH_NM, FWHM_NM, K_HI)
    groups, counts = np.unique(res.column_group, return_counts=True)
    assert groups.size == res.shrinkage.size and groups.size < 10
    assert np.all(counts * 60 >= 2 * n_band)
    assert res.valid.all()
    assert res.enhancement_ppm_m.std() == pytest.approx(np.mean(res.sd_ppm_m), rel=0.35)


def test_column_groups_greedy_and_insufficient():
    np.testing.assert_array_equal(column_groups(np.array([0, 50, 50, 200, 10]), 100), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(column_groups(np.array([120, 130, 100]), 100), [0, 1, 2])
    np.testing.assert_array_equal(column_groups(np.array([20, 30]), 100), [-1, -1])


def test_flare_saturation_and_cloud_masks():
    x, _, _ = synthetic_cube(300, 4, None, seed=4)
    i2389 = int(np.argmin(np.abs(WAVELENGTH_NM - 2389.0)))
    x[5, 0, i2389] = 2.0  # flare: > 1.5 uW cm-2 sr-1 nm-1 at 2389 nm
    x[6, 1, -10] = 7.0  # saturated window band
    x[7, 2, :3] = 40.0  # bright VNIR continuum: cloud
    res = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI, MatchedFilterOptions(cloud_threshold=20.0))
    assert not res.valid[5, 0] and not res.valid[6, 1] and not res.valid[7, 2]
    assert res.valid.sum() == x.shape[0] * x.shape[1] - 3
    no_cloud = matched_filter(x, WAVELENGTH_NM, FWHM_NM, K_HI)
    assert no_cloud.valid[7, 2]


def test_cloud_screening_without_continuum_bands_is_an_error():
    x, _, _ = synthetic_cube(300, 4, None, seed=4)
    window = window_bands(WAVELENGTH_NM, CH4_WINDOW_NM)
    cloudy = MatchedFilterOptions(cloud_threshold=20.0)
    with pytest.raises(ValueError, match="cloud screening needs bands"):
        matched_filter(x[..., window], WAVELENGTH_NM[window], FWHM_NM[window], K_HI, cloudy)


def test_loo_closed_form_matches_brute_force():
    rng = np.random.default_rng(5)
    n, b = 25, 6
    x = rng.standard_normal((n, b)) @ rng.standard_normal((b, b)) + 3.0
    grid = np.array([1e-4, 0.05, 0.3, 1.0])
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / (n - 1)
    brute = []
    for a in grid:
        total = 0.0
        for i in range(n):
            s_i = (xc.T @ xc - np.outer(xc[i], xc[i])) / (n - 1)
            r_i = (1 - a) * s_i + a * np.diag(np.diag(s))
            total += stats.multivariate_normal(np.zeros(b), r_i).logpdf(xc[i])
        brute.append(total)
    np.testing.assert_allclose(loo_log_likelihood(x, grid), brute, rtol=1e-9)


def test_loo_prefers_shrinkage_for_diagonal_covariance_and_few_samples():
    rng = np.random.default_rng(6)
    grid = np.logspace(-6, 0, 13)
    white = rng.standard_normal((40, 30)) * rng.uniform(0.5, 2.0, 30)
    assert grid[np.argmax(loo_log_likelihood(white, grid))] >= 0.1
    factor = rng.standard_normal((2000, 1)) @ rng.standard_normal((1, 30))
    correlated = factor + 0.05 * rng.standard_normal((2000, 30))
    assert grid[np.argmax(loo_log_likelihood(correlated, grid))] <= 1e-3


def test_orthorectify_hand_made_glt():
    field = np.arange(6.0).reshape(2, 3)
    row = np.array([[0, 1, -1], [1, 0, 0]])
    col = np.array([[2, 0, 1], [-1, 1, 0]])
    np.testing.assert_array_equal(orthorectify(field, row, col), [[2.0, 3.0, np.nan], [np.nan, 1.0, 0.0]])
    flags = orthorectify(field > 2, row, col, fill=False)
    assert flags.dtype == bool
    np.testing.assert_array_equal(flags, [[False, True, False], [False, False, False]])
    cube = np.arange(12.0).reshape(2, 3, 2)
    np.testing.assert_array_equal(orthorectify(cube, row, col)[0, 0], [4.0, 5.0])


def test_one_glt_index_resamples_every_field_like_orthorectify():
    rng = np.random.default_rng(3)
    row = rng.integers(-1, 40, (50, 30))
    col = np.where(rng.random((50, 30)) < 0.1, -1, rng.integers(0, 25, (50, 30)))
    glt = GltIndex.from_glt(row, col, (40, 25))
    fields = [rng.random((40, 25)).astype(np.float32), rng.random((40, 25)) > 0.5, rng.random((40, 25, 3))]
    for field, fill in zip(fields, (np.nan, False, -1.0), strict=True):
        expected = np.full(row.shape + field.shape[2:], fill, dtype=np.result_type(field, fill))
        ok = (row >= 0) & (col >= 0)
        expected[ok] = field[row[ok], col[ok]]  # the definition: out[i, j] = field[row[i, j], col[i, j]]
        out = glt.orthorectify(field, fill)
        assert out.dtype == expected.dtype
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(orthorectify(field, row, col, fill), expected)
    with pytest.raises(ValueError, match="raw shape"):
        GltIndex.from_glt(row, np.where(col >= 0, 25, -1), (40, 25))  # column 25 of a 25-column scene
    with pytest.raises(ValueError, match="does not match"):
        glt.orthorectify(np.zeros((40, 24)))


def test_enhance_emit_scene_carrier():
    x, _, _ = synthetic_cube(200, 6, (slice(50, 70), slice(1, 4)), seed=7)
    ny, nx = 210, 7
    rng = np.random.default_rng(8)
    glt_row = rng.integers(-1, 200, (ny, nx)).astype(np.int32)
    glt_col = np.where(glt_row >= 0, rng.integers(0, 6, (ny, nx)), -1).astype(np.int32)
    ds = xr.Dataset(
        {
            "radiance": (
                ("downtrack", "crosstrack", "band"),
                x.astype(np.float32),
                {"units": "uW/cm^2/SR/nm"},
            ),
            "glt_row": (("y", "x"), glt_row),
            "glt_col": (("y", "x"), glt_col),
        },
        coords={
            "wavelength": ("band", WAVELENGTH_NM),
            "fwhm": ("band", FWHM_NM),
            "lat": (("downtrack", "crosstrack"), 35.0 - 0.0005 * np.arange(200)[:, None] + np.zeros((1, 6))),
            "lon": (("downtrack", "crosstrack"), -103.0 + 0.0006 * np.arange(6) + np.zeros((200, 1))),
            "y_lat": ("y", 35.0 - 0.00054 * np.arange(ny)),
            "x_lon": ("x", -103.0 + 0.00054 * np.arange(nx)),
        },
        attrs={"instrument": "EMIT", "source_file": "/x/EMIT_L1B_RAD_001.nc", "checksum": "sha256:00"},
    )
    out = enhance_emit_scene(ds, K_HI, MatchedFilterOptions(second_pass=False))
    assert set(out.data_vars) == {"ch4_enhancement_ppm_m", "ch4_enhancement_sd_ppm_m", "valid", "pixel_lat",
                                  "pixel_lon", "pixel_row", "pixel_col"}
    filled = glt_row >= 0
    np.testing.assert_array_equal(out["pixel_row"].values, np.where(filled, glt_row, -1))
    np.testing.assert_array_equal(out["pixel_col"].values, np.where(filled, glt_col, -1))
    np.testing.assert_array_equal(out["pixel_lat"].values[filled], 35.0 - 0.0005 * glt_row[filled])
    np.testing.assert_array_equal(out["pixel_lon"].values[filled], -103.0 + 0.0006 * glt_col[filled])
    assert np.isnan(out["pixel_lat"].values[~filled]).all()
    assert out["ch4_enhancement_ppm_m"].dims == ("y", "x")
    assert out["ch4_enhancement_ppm_m"].attrs["units"] == "ppm m"
    assert out["lat"].dims == ("y",) and out["lon"].dims == ("x",)
    assert out.attrs["instrument"] == "EMIT" and out.attrs["checksum"] == "sha256:00"
    assert "matched filter" in out.attrs["method"] and "second_pass=False" in out.attrs["method"]
    options = MatchedFilterOptions(second_pass=False)
    raw = matched_filter(x.astype(np.float32), WAVELENGTH_NM, FWHM_NM, K_HI, options)
    expected = orthorectify(raw.enhancement_ppm_m, glt_row, glt_col)
    np.testing.assert_array_equal(out["ch4_enhancement_ppm_m"].values, expected)
    np.testing.assert_array_equal(out["valid"].values, glt_row >= 0)


def test_partial_significance_update_equals_the_full_map():
    rng = np.random.default_rng(11)
    alpha = rng.normal(0.0, 300.0, (60, 90))
    sd = rng.uniform(200.0, 400.0, alpha.shape)
    alpha[5, 7] = np.nan
    z = significance_map(alpha, sd, 1.5)
    cols = np.array([0, 1, 2, 40, 41, 60, 89])
    alpha[:, cols] += 500.0
    update_significance(z, alpha, sd, cols, 1.5)
    np.testing.assert_allclose(z, significance_map(alpha, sd, 1.5), rtol=1e-12, atol=1e-12)


def test_moment_downdate_equals_recomputing_without_the_removed_pixels():
    rng = np.random.default_rng(5)
    xw = (1.0 + 0.1 * rng.standard_normal((300, 6, 8))).astype(np.float32)
    use = rng.random((300, 6)) > 0.1
    removed = use & (rng.random((300, 6)) < 0.2)
    removed[:, 5] = use[:, 5]  # a column that loses every pixel
    cols = np.array([0, 2, 3, 5])
    moments = column_moments(xw, use, np.arange(6), 4)
    moments.downdate(xw, removed, cols)
    keep = use.copy()
    keep[:, cols] &= ~removed[:, cols]
    fresh = column_moments(xw, keep, np.arange(6), 4)
    np.testing.assert_array_equal(moments.count, fresh.count)
    np.testing.assert_allclose(moments.mean, fresh.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(moments.scatter, fresh.scatter, rtol=1e-9, atol=1e-12)
