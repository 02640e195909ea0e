"""The bundled sample archive: native names, readable files, plumes where the truth table puts them,
nothing for the null event, and the bundled copy equal to a fresh generation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.era5 import read_era5
from attribution_assets.readers.ghgsat import read_ghgsat_l2
from attribution_assets.readers.oco2 import read_oco2_lite
from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.readers.tropomi import read_tropomi_ch4
from attribution_assets.samples import generate
from attribution_assets.samples.plume import plume_column_xy_kg_m2
from attribution_assets.samples.simulate.emit import EMIT_PIXEL_M
from attribution_assets.samples.simulate.ghgsat import GHGSAT_BACKGROUND_PPB
from attribution_assets.samples.truth import load_events, load_overpasses
from attribution_assets.samples.weather import era5_dataset
from attribution_assets.science.forward.absorption import band_unit_absorption
from attribution_assets.science.forward.plume import column_enhancement_kg_m2
from attribution_assets.science.units import kg_h_to_kg_s

REPO = Path(__file__).resolve().parents[1]
BUNDLED_ARCHIVE = REPO / "data" / "sample_archive"
BUNDLED_ALERTS = REPO / "data" / "sample_alerts.csv"
READERS: dict[str, Callable[[Path], xr.Dataset]] = {
    "emit": read_emit_l1b,
    "tropomi": read_tropomi_ch4,
    "ghgsat": read_ghgsat_l2,
    "oco2": read_oco2_lite,
    "era5": read_era5,
}
EXPECTED_FILES = {
    "emit/EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc",
    "emit/EMIT_L1B_RAD_001_20250903T074000_2524605_003.nc",
    "ghgsat/GHGSat_L2_GHGSat-C5_20250814T164500Z_permian.h5",
    "ghgsat/GHGSat_L2_GHGSat-C9_20250721T065500Z_korpezhe.h5",
    "oco2/oco2_LtCO2_250610_B11210Ar_250710000000s.nc4",
    "tropomi/S5P_OFFL_L2__CH4____20250814T193300_20250814T211354_40858_03_020600_20250815T211354.nc",
    "tropomi/S5P_OFFL_L2__CH4____20250903T090300_20250903T104354_41137_03_020600_20250904T104354.nc",
    "tropomi/S5P_OFFL_L2__CH4____20250721T082800_20250721T100854_40509_03_020600_20250722T100854.nc",
    "era5/era5_single_levels_permian-ch4_20250814.nc",
    "era5/era5_single_levels_belchatow-co2_20250610.nc",
    "era5/era5_single_levels_turkmen-null-ch4_20250903.nc",
    "era5/era5_single_levels_korpezhe-ch4_20250721.nc",
}
EVENTS = {ev.event_id: ev for ev in load_events()}
OVERPASSES = {(op.event_id, op.instrument): op for op in load_overpasses()}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full generation (default seed) into a temporary folder."""
    root = tmp_path_factory.mktemp("samples")
    generate.generate(root / "sample_archive", root / "sample_alerts.csv")
    return root


def _files(archive: Path) -> set[str]:
    return {str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file()}


def _read(archive: Path, pattern: str) -> xr.Dataset:
    (path,) = [archive / name for name in EXPECTED_FILES if pattern in name]
    return READERS[path.parent.name](path)


def _plume_coords(event_id: str, instrument: str, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, ...]:
    """Downwind and crosswind distance (m) from the true source along the true wind of the overpass."""
    ev, op = EVENTS[event_id], OVERPASSES[(event_id, instrument)]
    x, y = ev.frame.to_xy(np.asarray(lon, float), np.asarray(lat, float))
    sx, sy = ev.source_xy_m
    speed = np.hypot(op.true_u_m_s, op.true_v_m_s)
    ex, ey = op.true_u_m_s / speed, op.true_v_m_s / speed
    return (x - sx) * ex + (y - sy) * ey, -(x - sx) * ey + (y - sy) * ex


def _contrast(values: np.ndarray, sd: np.ndarray, plume: np.ndarray, reference: np.ndarray) -> float:
    """(mean in ``plume`` - mean in ``reference``) in units of its standard error."""
    assert plume.sum() >= 5 and reference.sum() >= 5
    diff = values[plume].mean() - values[reference].mean()
    se = np.sqrt(np.mean(sd[plume] ** 2) / plume.sum() + np.mean(sd[reference] ** 2) / reference.sum())
    return float(diff / se)


def _simple_matched_filter(ds: xr.Dataset) -> np.ndarray:
    """Scene-wide classical matched filter in the 2137-2493 nm window, ppm m (downtrack, crosstrack)."""
    wl = ds["wavelength"].values
    k = band_unit_absorption(*load_ch4_unit_absorption(), wl, ds["fwhm"].values)
    window = (wl > 2137.0) & (wl < 2493.0)
    x = ds["radiance"].values[..., window].astype(np.float64).reshape(-1, window.sum())
    mu = x.mean(axis=0)
    cov_inv = np.linalg.inv(np.cov(x.T) + 1e-10 * np.eye(window.sum()))
    target = k[window] * mu
    alpha = (x - mu) @ cov_inv @ target / (target @ cov_inv @ target)
    return alpha.reshape(ds.sizes["downtrack"], ds.sizes["crosstrack"])


def test_every_native_file_is_written(fresh: Path) -> None:
    assert _files(fresh / "sample_archive") == EXPECTED_FILES


def test_every_file_opens_through_its_reader(fresh: Path) -> None:
    for name in EXPECTED_FILES:
        ds = READERS[name.split("/")[0]](fresh / "sample_archive" / name)
        assert ds.attrs["checksum"].startswith("sha256-headtail-v1:")
        assert all(ds.sizes[d] > 0 for d in ds.sizes)


def test_alerts_csv(fresh: Path) -> None:
    alerts = pd.read_csv(fresh / "sample_alerts.csv")
    assert list(alerts.columns) == ["event_id", "event_time", "latitude", "longitude", "gas"]
    assert list(alerts["event_id"]) == list(EVENTS)
    assert alerts["event_time"].str.endswith("Z").all()
    row = alerts.set_index("event_id").loc["permian-ch4"]
    assert (row["event_time"], row["longitude"], row["latitude"], row["gas"]) == (
        "2025-08-14T17:31:00Z",
        -103.61,
        31.9095,
        "CH4",
    )


def test_truth_winds_follow_era5_within_met_uncertainty() -> None:
    for (event_id, _), op in OVERPASSES.items():
        era5 = era5_dataset(EVENTS[event_id])
        generate.check_truth_winds(EVENTS[event_id], op, era5)
        ratio = np.hypot(op.true_u_m_s, op.true_v_m_s) / np.hypot(op.era5_u10_m_s, op.era5_v10_m_s)
        assert 0.9 <= ratio <= 1.1 and abs(op.wind_direction_offset_deg) <= 5.0
        assert 0.0 <= op.stability_index <= 5.0


@pytest.mark.parametrize(("event_id", "instrument"), [("permian-ch4", "EMIT"), ("korpezhe-ch4", "TROPOMI")])
def test_true_plume_skips_only_negligible_points(event_id: str, instrument: str) -> None:
    """The points the truth plume skips (far upwind or crosswind) carry < 1e-6 of the peak column."""
    ev, op = EVENTS[event_id], OVERPASSES[(event_id, instrument)]
    sx, sy = ev.source_xy_m
    x, y = np.meshgrid(sx + np.linspace(-5_000.0, 30_000.0, 351), sy + np.linspace(-15_000.0, 15_000.0, 301))
    pruned = plume_column_xy_kg_m2(ev, op, x, y)
    points = np.stack([x.ravel(), y.ravel()], axis=-1)
    rate_kg_s = kg_h_to_kg_s(ev.emission_rate_kg_h)
    wind = (op.true_u_m_s, op.true_v_m_s)
    full = column_enhancement_kg_m2(points, ev.source_xy_m, rate_kg_s, *wind, op.stability_index)
    full = np.asarray(full, dtype=np.float64).reshape(x.shape)
    kept = pruned > 0.0
    assert 0.0 < kept.mean() < 0.5
    np.testing.assert_allclose(pruned[kept], full[kept], rtol=1e-5, atol=1e-9 * full.max())
    assert full[~kept].max() < 1e-6 * full.max()


def test_imager_pixel_sees_the_plume_averaged_over_its_footprint() -> None:
    """An EMIT pixel's true plume is the mean of the plume over its 60 m square (dense quadrature), not
    the value at its centre, which near the source is far above that mean."""
    ev, op = EVENTS["permian-ch4"], OVERPASSES[("permian-ch4", "EMIT")]
    speed = np.hypot(op.true_u_m_s, op.true_v_m_s)
    along = np.array([op.true_u_m_s, op.true_v_m_s]) / speed
    across = np.array([-along[1], along[0]])
    offsets = np.linspace(-30.0, 30.0, 121)
    a, b = np.meshgrid(offsets, offsets)
    for downwind_m in (90.0, 150.0, 300.0):
        centre = np.asarray(ev.source_xy_m) + downwind_m * along
        square = centre + a[..., None] * along + b[..., None] * across
        footprint_mean = plume_column_xy_kg_m2(ev, op, square[..., 0], square[..., 1]).mean()
        x, y = np.array([centre[0]]), np.array([centre[1]])
        pixel = plume_column_xy_kg_m2(ev, op, x, y, pixel_m=EMIT_PIXEL_M)[0]
        point = plume_column_xy_kg_m2(ev, op, x, y)[0]
        assert pixel == pytest.approx(footprint_mean, rel=0.08)
        if downwind_m < 200.0:
            assert point > 1.2 * footprint_mean


@pytest.mark.parametrize("event_id", ["permian-ch4", "korpezhe-ch4"])
def test_ghgsat_plume_downwind_of_true_source(fresh: Path, event_id: str) -> None:
    ds = _read(fresh / "sample_archive", f"_{event_id.split('-')[0]}.h5")
    down, cross = _plume_coords(event_id, "GHGSAT", ds["longitude"].values, ds["latitude"].values)
    good = (ds["quality_flag"].values == 0) & np.isfinite(ds["xch4"].values)
    band = good & (np.abs(cross) < 100.0)
    plume, upwind = band & (down > 100.0) & (down < 1500.0), band & (down < -100.0) & (down > -1500.0)
    xch4, sd = ds["xch4"].values, ds["xch4_precision"].values
    assert _contrast(xch4, sd, plume, upwind) > 5.0
    assert abs(np.median(xch4[upwind]) - GHGSAT_BACKGROUND_PPB) < 30.0


@pytest.mark.parametrize(
    ("pattern", "event_id", "has_plume"),
    [
        ("20250814T173100", "permian-ch4", True),
        ("20250903T074000", "turkmen-null-ch4", False),
    ],
)
def test_emit_plume_only_where_there_is_a_source(
    fresh: Path, pattern: str, event_id: str, has_plume: bool
) -> None:
    ds = _read(fresh / "sample_archive", pattern)
    alpha = _simple_matched_filter(ds)
    down, cross = _plume_coords(event_id, "EMIT", ds["lon"].values, ds["lat"].values)
    band = np.abs(cross) < 120.0
    plume, upwind = band & (down > 60.0) & (down < 1500.0), band & (down < -60.0) & (down > -1500.0)
    sd = np.full(alpha.shape, np.std(alpha[~band]))
    contrast = _contrast(alpha, sd, plume, upwind)
    if has_plume:
        assert contrast > 5.0
        assert alpha.max() > 3000.0
    else:
        assert abs(contrast) < 4.0


@pytest.mark.parametrize(
    ("pattern", "event_id", "has_plume"),
    [
        ("S5P_OFFL_L2__CH4____20250721", "korpezhe-ch4", True),
        ("S5P_OFFL_L2__CH4____20250903", "turkmen-null-ch4", False),
    ],
)
def test_tropomi_plume_only_where_there_is_a_source(
    fresh: Path, pattern: str, event_id: str, has_plume: bool
) -> None:
    ds = _read(fresh / "sample_archive", pattern)
    down, cross = _plume_coords(event_id, "TROPOMI", ds["longitude"].values, ds["latitude"].values)
    plume = (down > -2000.0) & (down < 25_000.0) & (np.abs(cross) < 5000.0)
    upwind = (down < -20_000.0) & (np.abs(cross) < 60_000.0)
    contrast = _contrast(ds["xch4"].values, ds["xch4_precision"].values, plume, upwind)
    assert contrast > 5.0 if has_plume else abs(contrast) < 4.0


def test_oco2_track_crosses_the_co2_plume(fresh: Path) -> None:
    ds = _read(fresh / "sample_archive", "oco2_LtCO2")
    assert 2000 <= ds.sizes["sounding"] <= 6000
    down, cross = _plume_coords("belchatow-co2", "OCO2", ds["longitude"].values, ds["latitude"].values)
    good = ds["xco2_quality_flag"].values == 0
    plume = good & (down > 5000.0) & (down < 15_000.0) & (np.abs(cross) < 1200.0)
    background = good & (np.abs(cross) > 30_000.0)
    xco2, sd = ds["xco2"].values, ds["xco2_uncertainty"].values
    assert _contrast(xco2, sd, plume, background) > 5.0
    assert 1.0 < xco2[plume].mean() - np.median(xco2[background]) < 10.0


def test_subset_generation_equals_full_generation(fresh: Path, tmp_path: Path) -> None:
    (path,) = generate.generate(tmp_path, event_ids=["korpezhe-ch4"], instruments=["GHGSAT"])
    full = READERS["ghgsat"](fresh / "sample_archive" / path.relative_to(tmp_path))
    xr.testing.assert_equal(READERS["ghgsat"](path).drop_attrs(), full.drop_attrs())


def test_bundled_archive_equals_fresh_generation(fresh: Path) -> None:
    assert _files(BUNDLED_ARCHIVE) == EXPECTED_FILES
    for name in sorted(EXPECTED_FILES):
        read = READERS[name.split("/")[0]]
        bundled, new = read(BUNDLED_ARCHIVE / name), read(fresh / "sample_archive" / name)
        assert set(bundled.variables) == set(new.variables), name
        for var in new.variables:
            a, b = bundled[var].values, new[var].values
            if a.dtype.kind in "fc":
                np.testing.assert_allclose(
                    a, b, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=f"{name}:{var}"
                )
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"{name}:{var}")
    assert BUNDLED_ALERTS.read_text() == (fresh / "sample_alerts.csv").read_text()
