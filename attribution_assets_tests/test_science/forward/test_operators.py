"""Observation operators (the shared core and every instrument's block builder): shapes, weights, unit
factors, footprint integrals and mass."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import jax
import numpy as np
import pytest
import shapely
import xarray as xr
from scipy import sparse

from attribution_assets.science.forward.blocks import block_from_dataset, block_to_dataset
from attribution_assets.science.forward.emit import emit_block
from attribution_assets.science.forward.ghgsat import gauss_hermite_stencil, ghgsat_block
from attribution_assets.science.forward.oco2 import oco2_block
from attribution_assets.science.forward.operators import (
    jacobian,
    jacobians,
    predict_block,
    quadrilateral_quadrature,
)
from attribution_assets.science.forward.plume import column_enhancement_kg_m2
from attribution_assets.science.forward.tropomi import (
    boundary_layer_fractions,
    tropomi_bl_factor_ppb_per_kg_m2,
    tropomi_block,
    tropomi_xch4_operator,
)
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import (
    KG_M2_PER_PPM_M_CH4,
    M_CH4_KG_MOL,
    METRES_PER_DEG_LAT,
    kg_m2_per_ppb,
    kg_m2_per_ppm,
)

FRAME = LocalFrame(-103.0, 31.0)
M_PER_DEG_LAT = 110_860.0  # meridional degree near 31 N


def wind(u: float = 5.0, v: float = 0.0, s: float = 3.0) -> OverpassWind:
    return OverpassWind(datetime(2024, 6, 1, 18), u, v, 1.5, 0.2, s, 1000.0, 90000.0, "ERA5")


def emit_scene(ny: int = 40, nx: int = 60) -> xr.Dataset:
    """Ortho grid with ~60 m pixels, latitude decreasing with y; a few invalid pixels."""
    lat = 31.0 + 0.012 - np.arange(ny) * 60.0 / M_PER_DEG_LAT
    lon = -103.0 - 0.003 + np.arange(nx) * 60.0 / (M_PER_DEG_LAT * np.cos(np.radians(31.0)))
    rng = np.random.default_rng(1)
    valid = np.ones((ny, nx), bool)
    valid[0, :5] = False
    values = rng.normal(0.0, 400.0, (ny, nx))
    values[3, 3] = np.nan
    return xr.Dataset(
        {
            "ch4_enhancement_ppm_m": (("y", "x"), values),
            "ch4_enhancement_sd_ppm_m": (("y", "x"), np.full((ny, nx), 400.0)),
            "valid": (("y", "x"), valid),
        },
        coords={"lat": ("y", lat), "lon": ("x", lon)},
    )


def test_emit_block_places_each_raw_pixel_once_where_it_looked() -> None:
    """A swath of 60 m pixels turned 20 degrees from north, resampled onto a north-up grid of 60 m
    cells by the nearest pixel (as EMIT's GLT does): a cell's centre lies up to ~40 m from the pixel
    it shows and some pixels show in two cells. The block has one observation per pixel shown, at
    the pixel's own position and with its value, on the pixels' own grid."""
    m_per_deg_lon = M_PER_DEG_LAT * np.cos(np.radians(31.0))
    turn = np.radians(20.0)
    down, across = np.meshgrid(np.arange(30) - 14.5, np.arange(20) - 9.5, indexing="ij")
    px = 60.0 * (down * np.sin(turn) + across * np.cos(turn))
    py = 60.0 * (down * np.cos(turn) - across * np.sin(turn))
    raw_lon, raw_lat = FRAME.to_lonlat(px, py)
    ny, nx = 36, 36
    cell_lat = 31.0 + 0.0095 - np.arange(ny) * 60.0 / M_PER_DEG_LAT
    cell_lon = -103.0 - 0.011 + np.arange(nx) * 60.0 / m_per_deg_lon
    glon, glat = np.meshgrid(cell_lon, cell_lat)
    cx, cy = FRAME.to_xy(glon, glat)
    gap = np.hypot(cx[..., None] - px.ravel(), cy[..., None] - py.ravel())
    nearest = np.argmin(gap, axis=-1)
    shown = np.where(np.min(gap, axis=-1) < 45.0, nearest, -1)
    values = np.arange(px.size, dtype=float)
    enh = xr.Dataset(
        {
            "ch4_enhancement_ppm_m": (("y", "x"), np.where(shown >= 0, values[shown], np.nan)),
            "ch4_enhancement_sd_ppm_m": (("y", "x"), np.full((ny, nx), 400.0)),
            "valid": (("y", "x"), shown >= 0),
            "pixel_row": (("y", "x"), np.where(shown >= 0, shown // down.shape[1], -1)),
            "pixel_col": (("y", "x"), np.where(shown >= 0, shown % down.shape[1], -1)),
            "pixel_lat": (("y", "x"), np.where(shown >= 0, raw_lat.ravel()[shown], np.nan)),
            "pixel_lon": (("y", "x"), np.where(shown >= 0, raw_lon.ravel()[shown], np.nan)),
        },
        coords={"lat": ("y", cell_lat), "lon": ("x", cell_lon)},
    )
    assert (shown >= 0).sum() > np.unique(shown[shown >= 0]).size  # some pixels show in two cells
    block = emit_block(enh, FRAME, overpass=0)
    pixels = block.y.astype(int)
    assert sorted(pixels) == sorted(np.unique(shown[shown >= 0]))
    np.testing.assert_allclose(block.points_xy_m[:, 0, 0], px.ravel()[pixels], atol=1e-6)
    np.testing.assert_allclose(block.points_xy_m[:, 0, 1], py.ravel()[pixels], atol=1e-6)
    # on the pixels' own (downtrack, crosstrack) grid, where the matched filter's errors are correlated
    np.testing.assert_array_equal(block.grid_index, np.stack(np.divmod(pixels, down.shape[1]), axis=-1))
    np.testing.assert_array_equal(block.lat, raw_lat.ravel()[pixels])
    cloudy = enh.assign(valid=enh["valid"] & False)  # every pixel screened out: an empty block
    assert emit_block(cloudy, FRAME, overpass=0).y.size == 0
    near = emit_block(enh, FRAME, overpass=0, radius_m=200.0)  # the radius is measured at the pixels
    assert 0 < near.y.size < block.y.size
    assert np.all(np.hypot(*near.points_xy_m[:, 0, :].T) <= 200.0)
    centre_offsets = np.min(np.where(shown[..., None] == pixels, gap[..., pixels], np.inf), axis=(0, 1))
    assert 15.0 < np.median(centre_offsets) < 40.0  # what the cell centres would have put wrong


def test_emit_block_shapes_weights_and_factor() -> None:
    scene = emit_scene()
    block = emit_block(scene, FRAME, overpass=0, subpixel=2)
    n_expected = 40 * 60 - 5 - 1
    assert block.size == n_expected
    assert block.points_xy_m.shape == (n_expected, 4, 2)
    np.testing.assert_allclose(block.weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(block.kg_m2_to_obs, 1.0 / KG_M2_PER_PPM_M_CH4)
    assert block.units == "ppm m" and block.instrument == "EMIT" and block.gas == "CH4"
    # sub-points sit +/- a quarter pixel (15 m) around the pixel centre
    cx, cy = FRAME.to_xy(block.lon, block.lat)
    np.testing.assert_allclose(block.points_xy_m.mean(axis=1), np.stack([cx, cy], -1), atol=0.01)
    spread = np.abs(block.points_xy_m - np.stack([cx, cy], -1)[:, None, :])
    np.testing.assert_allclose(spread, 15.0, atol=0.2)
    small = emit_block(scene, FRAME, overpass=0, radius_m=500.0)
    assert 0 < small.size < block.size
    assert np.all(np.hypot(*FRAME.to_xy(small.lon, small.lat)) <= 500.0)


def test_emit_jacobian_conserves_mass() -> None:
    """u * crosswind integral of the Jacobian over each pixel column = Q = 1 kg/s."""
    scene = emit_scene(ny=60, nx=50)
    block = emit_block(scene, FRAME, overpass=0)
    source = np.array(FRAME.to_xy(-103.0 - 0.002, 31.0 + 0.012 - 30 * 60.0 / M_PER_DEG_LAT))
    u = 4.0
    jac = jacobian(block, np.asarray(source, float).ravel(), wind(u, 0.0, 4.0))
    column_mass = jac / block.kg_m2_to_obs  # kg m-2 per (kg/s)
    dy = float(
        np.abs(np.diff(FRAME.to_xy(scene["lon"].values[:2] * 0 - 103.0, scene["lat"].values[:2])[1]))[0]
    )
    assert dy == pytest.approx(60.0, rel=1e-3)
    for column in (15, 25, 35):
        in_column = block.lon == scene["lon"].values[column]
        assert np.count_nonzero(in_column) == 60
        flux = u * np.sum(column_mass[in_column]) * dy
        assert flux == pytest.approx(1.0, rel=0.02)


def test_jacobians_are_the_jacobians_of_each_source_and_wind() -> None:
    """The batched unit plumes equal one ``jacobian`` per (source, wind), row by row."""
    block = emit_block(emit_scene(ny=40, nx=30), FRAME, overpass=0)
    sources = np.array([[0.0, 0.0], [120.0, -300.0], [-400.0, 250.0]])
    u, v = np.array([4.0, -2.0, 0.5]), np.array([0.0, 3.0, -5.0])
    batched = jacobians(block, sources, u, v, 2.0)
    assert batched.shape == (3, block.size)
    for k in range(3):
        single = jacobian(block, sources[k], wind(u[k], v[k], 2.0))
        np.testing.assert_allclose(batched[k], single, rtol=1e-5, atol=1e-6 * np.abs(single).max())
    assert np.abs(batched).max() > 0


def ghgsat_scene(n: int = 30) -> xr.Dataset:
    jj, ii = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    lat = 31.0 + (jj - n / 2) * 25.0 / M_PER_DEG_LAT
    lon = -103.0 + (ii - n / 2) * 25.0 / (M_PER_DEG_LAT * np.cos(np.radians(31.0)))
    flag = np.zeros((n, n), int)
    flag[:2] = 1
    xch4 = 1900.0 + np.zeros((n, n))
    xch4[5, 5] = np.nan
    return xr.Dataset(
        {
            "xch4": (("y", "x"), xch4),
            "xch4_precision": (("y", "x"), np.full((n, n), 20.0)),
            "quality_flag": (("y", "x"), flag),
            "latitude": (("y", "x"), lat),
            "longitude": (("y", "x"), lon),
        }
    )


def test_ghgsat_block_psf_stencil_and_factor() -> None:
    block = ghgsat_block(
        ghgsat_scene(), FRAME, overpass=1, surface_pressure_pa=95000.0, psf_sigma_m=25.0, psf_order=3
    )
    assert block.size == 30 * 30 - 2 * 30 - 1
    assert block.points_xy_m.shape == (block.size, 9, 2)
    np.testing.assert_allclose(block.weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(block.kg_m2_to_obs, 1.0 / kg_m2_per_ppb(95000.0, "CH4"))
    assert block.overpass == 1 and block.units == "ppb"
    offsets, w = gauss_hermite_stencil(25.0)
    # Gauss-Hermite moments of N(0, sigma^2): mean 0, variance sigma^2, fourth moment 3 sigma^4
    np.testing.assert_allclose(w @ offsets, 0.0, atol=1e-9)
    np.testing.assert_allclose(w @ offsets**2, 625.0)
    np.testing.assert_allclose(w @ offsets[:, 0] ** 4, 3 * 625.0**2)


def test_ghgsat_block_carries_the_surface_albedo_of_its_pixels() -> None:
    """The kept pixels' ``surface_albedo`` becomes the block's ``albedo``; a scene without it gives None."""
    scene = ghgsat_scene()
    albedo = np.linspace(0.1, 0.3, scene["xch4"].size).reshape(scene["xch4"].shape)
    block = ghgsat_block(scene.assign(surface_albedo=(("y", "x"), albedo)), FRAME, 0, 95000.0)
    keep = (scene["quality_flag"].values == 0) & np.isfinite(scene["xch4"].values)
    np.testing.assert_array_equal(block.albedo, albedo[keep])
    assert ghgsat_block(scene, FRAME, 0, 95000.0).albedo is None


def test_imager_blocks_keep_their_pixels_grid_positions() -> None:
    """EMIT and GHGSat observations keep their (row, column) on the raster, the neighbourhoods the
    correlated-error field is fitted on; pixels left out leave gaps."""
    scene = emit_scene()
    block = emit_block(scene, FRAME, overpass=0)
    rows, cols = block.grid_index.T
    np.testing.assert_array_equal(block.lat, scene["lat"].values[rows])
    np.testing.assert_array_equal(block.lon, scene["lon"].values[cols])
    assert block.grid_index.shape == (40 * 60 - 6, 2)
    ghgsat = ghgsat_scene()
    gblock = ghgsat_block(ghgsat, FRAME, 0, 95000.0)
    rows, cols = gblock.grid_index.T
    np.testing.assert_array_equal(gblock.y, ghgsat["xch4"].values[rows, cols])


def test_a_block_rejects_grid_positions_and_precision_of_the_wrong_shape() -> None:
    block = emit_block(emit_scene(), FRAME, overpass=0)
    with pytest.raises(ValueError, match="grid_index has shape"):
        replace(block, grid_index=block.grid_index[:-1])
    with pytest.raises(ValueError, match="error_precision has shape"):
        replace(block, error_precision=sparse.eye(3).tocsr())
    np.testing.assert_allclose(block.precision().diagonal(), 1.0 / block.sigma**2)


def test_ghgsat_psf_as_sigma_floor_matches_sampled_psf() -> None:
    """A Gaussian PSF folded into sigma_floor equals sampling the PSF explicitly (Gaussian * Gaussian)."""
    scene = ghgsat_scene()
    single = ghgsat_block(scene, FRAME, overpass=0, surface_pressure_pa=95000.0, psf_sigma_m=25.0)
    sampled = ghgsat_block(
        scene, FRAME, overpass=0, surface_pressure_pa=95000.0, psf_sigma_m=25.0, psf_order=7
    )
    assert single.points_xy_m.shape[1] == 1
    pixel_m = float(np.median(np.diff(scene["latitude"].values[:, 0]))) * METRES_PER_DEG_LAT
    assert single.sigma_floor_m == pytest.approx(np.sqrt(15.0**2 + 25.0**2 + pixel_m**2 / 12.0))
    wind = OverpassWind(datetime(2024, 1, 1), 3.0, 0.0, 0.5, 0.1, 3.0, 1000.0, 95000.0, "ERA5")
    source = np.array([-300.0, 0.0])
    j_single = jacobian(single, source, wind)
    j_sampled = jacobian(sampled, source, wind)
    downwind = single.points_xy_m[:, 0, 0] - source[0] > 250.0
    np.testing.assert_allclose(
        j_single[downwind], j_sampled[downwind], rtol=0.03, atol=0.01 * j_sampled[downwind].max()
    )


def test_tropomi_operator_hand_example() -> None:
    n_dry = np.array([100.0, 100.0, 200.0])
    kernel = np.array([0.5, 1.0, 1.2])
    x_a = np.array([0.2, 0.2, 0.4])
    x = np.array([0.3, 0.25, 0.4])
    # sum x_a + A (x - x_a) = 0.25 + 0.25 + 0.4 = 0.9 mol m-2 over 400 mol m-2 of dry air
    assert tropomi_xch4_operator(x, x_a, kernel, n_dry) == pytest.approx(1e9 * 0.9 / 400.0)
    stacked = tropomi_xch4_operator(np.stack([x, x_a]), np.stack([x_a, x_a]), kernel, n_dry)
    np.testing.assert_allclose(stacked, [1e9 * 0.9 / 400.0, 1e9 * 0.8 / 400.0])


def _tropomi_pixels(corners_xy: np.ndarray, p_s: float = 95000.0) -> xr.Dataset:
    n = corners_xy.shape[0]
    lon_b, lat_b = FRAME.to_lonlat(corners_xy[..., 0], corners_xy[..., 1])
    centre_lon, centre_lat = FRAME.to_lonlat(corners_xy[..., 0].mean(1), corners_xy[..., 1].mean(1))
    layers = 12
    n_dry = np.linspace(2.6e4, 1.9e4, layers)[None, :] * np.ones((n, 1))
    kernel = np.linspace(0.7, 1.1, layers)[None, :] * np.ones((n, 1))
    return xr.Dataset(
        {
            "xch4": ("pixel", np.full(n, 1880.0)),
            "xch4_precision": ("pixel", np.full(n, 12.0)),
            "latitude": ("pixel", centre_lat),
            "longitude": ("pixel", centre_lon),
            "latitude_bounds": (("pixel", "corner"), lat_b),
            "longitude_bounds": (("pixel", "corner"), lon_b),
            "column_averaging_kernel": (("pixel", "layer"), kernel),
            "methane_profile_apriori": (("pixel", "layer"), 1.8e-6 * n_dry),
            "dry_air_subcolumns": (("pixel", "layer"), n_dry),
            "surface_pressure": ("pixel", np.full(n, p_s)),
            "pressure_interval": ("pixel", np.full(n, p_s / layers)),
        },
    )


def _quad(cx: float, cy: float, w: float = 5500.0, h: float = 7000.0, skew: float = 600.0) -> np.ndarray:
    # corners deliberately out of cyclic order (0, 2, 1, 3) to exercise the re-ordering
    return np.array(
        [
            [cx - w / 2, cy - h / 2],
            [cx + w / 2 + skew, cy + h / 2],
            [cx + w / 2, cy - h / 2],
            [cx - w / 2 + skew, cy + h / 2],
        ]
    )


def test_linear_factor_equals_full_operator_response() -> None:
    ds = _tropomi_pixels(np.stack([_quad(0.0, 0.0)]))
    p_s, dp = 95000.0, 95000.0 / 12
    pblh = -8000.0 * np.log(1.0 - 2.0 / 12.0)  # boundary-layer top exactly at the top of layer 1
    block = tropomi_block(ds, FRAME, overpass=0, pblh_m=pblh)
    kernel = ds["column_averaging_kernel"].values[0]
    n_dry = ds["dry_air_subcolumns"].values[0]
    x_a = ds["methane_profile_apriori"].values[0]
    delta_omega = 1e-4  # kg m-2
    delta = np.zeros(12)
    delta[:2] = delta_omega / M_CH4_KG_MOL * n_dry[:2] / n_dry[:2].sum()
    response = tropomi_xch4_operator(x_a + delta, x_a, kernel, n_dry) - tropomi_xch4_operator(
        x_a, x_a, kernel, n_dry
    )
    assert block.kg_m2_to_obs[0] * delta_omega == pytest.approx(response, rel=1e-9)
    fractions = boundary_layer_fractions(np.array([p_s]), np.array([dp]), 12, pblh)
    np.testing.assert_allclose(fractions[0], [1, 1] + [0] * 10, atol=1e-12)
    # unit kernel and hydrostatic dry-air column: the factor is the plain column conversion
    hydrostatic = np.full((1, 12), p_s / (9.80665 * 28.964e-3) / 12)
    unit = tropomi_bl_factor_ppb_per_kg_m2(np.ones((1, 12)), hydrostatic, fractions)
    assert unit[0] == pytest.approx(1.0 / kg_m2_per_ppb(p_s, "CH4"), rel=1e-9)


def test_quadrilateral_quadrature_area_and_centroid() -> None:
    corners = np.stack([_quad(1000.0, -2000.0)])
    points, weights = quadrilateral_quadrature(corners, 4)
    assert points.shape == (1, 16, 2)
    np.testing.assert_allclose(weights.sum(1), 1.0)
    polygon = shapely.Polygon(corners[0][[0, 2, 1, 3]])
    np.testing.assert_allclose(weights[0] @ points[0], [polygon.centroid.x, polygon.centroid.y], atol=1e-6)


def test_tropomi_jacobian_is_footprint_average() -> None:
    centres = [(6000.0, 0.0), (12000.0, 3000.0), (20000.0, -2500.0)]
    corners = np.stack([_quad(cx, cy) for cx, cy in centres])
    ds = _tropomi_pixels(corners)
    met = wind(5.0, 0.5, 1.0)
    source = np.array([0.0, 0.0])
    fine_points, owner = [], []
    for i in range(3):
        polygon = shapely.Polygon(corners[i][[0, 2, 1, 3]])
        gx, gy = np.meshgrid(
            np.arange(-4000.0, 4600.0, 25.0) + centres[i][0], np.arange(-4000.0, 4000.0, 25.0) + centres[i][1]
        )
        inside = shapely.contains_xy(polygon, gx, gy)
        fine_points.append(np.stack([gx[inside], gy[inside]], -1))
        owner.append(np.full(inside.sum(), i))
    omega = np.asarray(
        jax.jit(column_enhancement_kg_m2)(np.concatenate(fine_points), source, 1.0, 5.0, 0.5, 1.0)
    )
    owner_all = np.concatenate(owner)
    fine = np.array([omega[owner_all == i].mean() for i in range(3)])  # fine-grid footprint mean, kg m-2
    for n_sub, tol in ((4, 0.10), (16, 0.01)):
        block = tropomi_block(ds, FRAME, overpass=0, pblh_m=900.0, n_sub=n_sub)
        assert block.points_xy_m.shape == (3, n_sub**2, 2)
        np.testing.assert_allclose(block.weights.sum(1), 1.0)
        jac = jacobian(block, source, met)
        assert np.all(jac > 0)
        np.testing.assert_allclose(jac / block.kg_m2_to_obs, fine, rtol=tol)


def test_oco2_block() -> None:
    centres = [(2000.0 * k, 500.0 * k) for k in range(5)]
    corners = np.stack([_quad(cx, cy, 1300.0, 2250.0, 100.0) for cx, cy in centres])
    lon_b, lat_b = FRAME.to_lonlat(corners[..., 0], corners[..., 1])
    clon, clat = FRAME.to_lonlat(corners[..., 0].mean(1), corners[..., 1].mean(1))
    flag = np.array([0, 0, 1, 0, 0])
    ds = xr.Dataset(
        {
            "xco2": ("sounding", np.full(5, 420.0)),
            "xco2_uncertainty": ("sounding", np.full(5, 0.5)),
            "xco2_quality_flag": ("sounding", flag),
            "latitude": ("sounding", clat),
            "longitude": ("sounding", clon),
            "vertex_latitude": (("sounding", "vertex"), lat_b),
            "vertex_longitude": (("sounding", "vertex"), lon_b),
            "psurf": ("sounding", np.array([1000.0, 990.0, 980.0, 970.0, 960.0])),
        }
    )
    block = oco2_block(ds, FRAME, overpass=2, n_sub=3)
    assert block.size == 4 and block.points_xy_m.shape == (4, 9, 2)
    assert block.gas == "CO2" and block.units == "ppm"
    np.testing.assert_allclose(block.weights.sum(1), 1.0)
    np.testing.assert_allclose(
        block.kg_m2_to_obs, 1.0 / kg_m2_per_ppm(np.array([1e5, 99e3, 97e3, 96e3]), "CO2")
    )
    np.testing.assert_allclose(block.lon, clon[flag == 0])


def test_jacobian_is_predict_block_at_unit_rate() -> None:
    block = ghgsat_block(ghgsat_scene(12), FRAME, overpass=0, surface_pressure_pa=95000.0)
    met = wind(3.0, 2.0, 2.5)
    source = np.array([-100.0, -80.0])
    jac = jacobian(block, source, met)
    three = np.asarray(
        jax.jit(predict_block)(
            block.points_xy_m,
            block.weights,
            block.kg_m2_to_obs,
            source,
            3.0,
            met.u_m_s,
            met.v_m_s,
            met.stability_index,
            sigma_floor_m=block.sigma_floor_m,
        )
    )
    np.testing.assert_allclose(three, 3.0 * jac, rtol=1e-5)
    assert jac.max() > 0


def test_tropomi_block_drops_non_finite_pixels() -> None:
    corners = np.stack([_quad(0.0, 0.0), _quad(8000.0, 0.0)])
    ds = _tropomi_pixels(corners)
    ds["xch4"][1] = np.nan
    block = tropomi_block(ds, FRAME, overpass=0, pblh_m=900.0)
    assert block.size == 1 and block.kg_m2_to_obs.shape == (1,)
    assert block.albedo is None
    with_albedo = ds.assign(surface_albedo_SWIR=("pixel", np.array([0.21, 0.34])))
    np.testing.assert_array_equal(tropomi_block(with_albedo, FRAME, 0, 900.0).albedo, [0.21])


@pytest.mark.parametrize("with_albedo", [True, False])
def test_a_block_survives_its_netcdf_round_trip(tmp_path, with_albedo: bool) -> None:
    """The forward stage stores blocks as NetCDF and the inversion reads them back unchanged, the
    albedo included where there is one."""
    scene = ghgsat_scene()
    if with_albedo:
        scene = scene.assign(surface_albedo=(("y", "x"), np.linspace(0.1, 0.3, 900).reshape(30, 30)))
    block = ghgsat_block(scene, FRAME, 1, 95000.0)
    path = tmp_path / "block.nc"
    block_to_dataset(block, np.ones(block.size)).to_netcdf(path)
    with xr.open_dataset(path) as ds:
        back = block_from_dataset(ds.load())
    for name in ("y", "sigma", "points_xy_m", "weights", "kg_m2_to_obs", "lon", "lat", "grid_index"):
        np.testing.assert_array_equal(getattr(back, name), getattr(block, name), err_msg=name)
    assert (back.instrument, back.overpass, back.sigma_floor_m) == ("GHGSAT", 1, block.sigma_floor_m)
    if with_albedo:
        np.testing.assert_array_equal(back.albedo, block.albedo)
    else:
        assert back.albedo is None
