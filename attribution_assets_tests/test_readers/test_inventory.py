"""Tests of the inventory readers (WRI GPPD, facility lists, EDGAR grids) and the bundled samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from attribution_assets.paths import DATA_DIR, SAMPLE_TRUTH
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.inventory import (
    FACILITY_COLUMNS,
    SECONDS_PER_YEAR,
    edgar_candidates,
    grid_cell_area_m2,
    read_edgar,
    read_facility_list,
    read_wri_gppd,
)
from attribution_assets.science.units import EARTH_RADIUS_M

REF = DATA_DIR / "reference"
GPPD = REF / "wri_gppd_sample.csv"
FACILITIES = REF / "facilities_sample.csv"
EDGAR = REF / "edgar_ch4_sample.nc"


def _truth(event_id: str) -> pd.Series:
    table = pd.read_csv(SAMPLE_TRUTH)
    return table.set_index("event_id").loc[event_id]


# ---------------------------------------------------------------- WRI GPPD


def test_gppd_sample_contains_belchatow() -> None:
    plants = read_wri_gppd(GPPD)
    assert tuple(plants.columns) == FACILITY_COLUMNS
    row = plants.set_index("name").loc["Belchatow"]
    assert row["capacity_mw"] == pytest.approx(5102, rel=0.05)
    assert (row["latitude"], row["longitude"]) == pytest.approx((51.2660, 19.3308))
    assert row["gas"] == "CO2" and row["sector"] == "power:coal"
    assert row["facility_id"].startswith("GPPD:")
    assert plants.attrs["checksum"].startswith("sha256-headtail-v1:")
    assert plants.attrs["instrument"] == "WRI GPPD"


def test_gppd_bbox_and_empty_aoi() -> None:
    plants = read_wri_gppd(GPPD, bbox=(19.0, 51.0, 19.6, 51.5))
    assert list(plants["name"]) == ["Belchatow"]
    with pytest.raises(EmptyAOIError):
        read_wri_gppd(GPPD, bbox=(0.0, 0.0, 1.0, 1.0))


def test_gppd_missing_column_names_file_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "gppd.csv"
    pd.read_csv(GPPD).drop(columns="primary_fuel").to_csv(bad, index=False)
    with pytest.raises(ProductFormatError) as info:
        read_wri_gppd(bad)
    assert info.value.variable == "primary_fuel" and str(bad) in str(info.value)


def test_gppd_bad_latitude_names_row(tmp_path: Path) -> None:
    table = pd.read_csv(GPPD)
    table.loc[2, "latitude"] = 123.0
    bad = tmp_path / "gppd.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(ProductFormatError, match="data row 3"):
        read_wri_gppd(bad)


# ---------------------------------------------------------------- facility lists


def test_facility_sample_covers_the_true_sources() -> None:
    facilities = read_facility_list(FACILITIES)
    assert tuple(facilities.columns) == FACILITY_COLUMNS
    assert set(facilities["gas"]) == {"CH4"}
    for event_id, n_expected in (("permian-ch4", 3), ("korpezhe-ch4", 2)):
        truth = _truth(event_id)
        near = read_facility_list(FACILITIES, bbox=(truth["alert_lon"] - 0.05, truth["alert_lat"] - 0.05,
                                                    truth["alert_lon"] + 0.05, truth["alert_lat"] + 0.05))
        assert len(near) == n_expected
        dist = np.hypot((near["longitude"] - truth["source_lon"]) * np.cos(np.radians(truth["source_lat"])),
                        near["latitude"] - truth["source_lat"]) * 111_195.0
        assert dist.min() < 1.0
        assert dist.max() < 1500.0


def test_facility_list_geojson_defaults(tmp_path: Path) -> None:
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [190.0, 10.0]},
         "properties": {"facility_id": "X1", "name": "pad"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-170.5, 10.5]},
         "properties": {"facility_id": "X2", "name": "plant", "gas": "co2", "sector": "power:gas",
                        "prior_weight": 2.0}},
    ]}
    path = tmp_path / "facilities.geojson"
    path.write_text(json.dumps(doc))
    table = read_facility_list(path).set_index("facility_id")
    assert table.loc["X1", "gas"] == "CH4"
    assert table.loc["X1", "longitude"] == pytest.approx(-170.0)
    assert table.loc["X1", "prior_weight"] == 1.0
    assert table.loc["X2", "gas"] == "CO2" and table.loc["X2", "prior_weight"] == 2.0
    assert table.loc["X1", "source"] == "facility list facilities.geojson"


@pytest.mark.parametrize(("content", "column"), [
    ("facility_id,name,latitude\nA,a,1\n", "longitude"),
    ("facility_id,name,latitude,longitude,gas\nA,a,1,2,N2O\n", "gas"),
    ("facility_id,name,latitude,longitude\nA,a,1,2\nA,b,1,2\n", "facility_id"),
    ("facility_id,name,latitude,longitude\nA,a,north,2\n", "latitude"),
])
def test_facility_list_errors_name_the_column(tmp_path: Path, content: str, column: str) -> None:
    path = tmp_path / "f.csv"
    path.write_text(content)
    with pytest.raises(ProductFormatError) as info:
        read_facility_list(path)
    assert info.value.variable == column


# ---------------------------------------------------------------- EDGAR


def _write_grid(path: Path, name: str, units: str, lon: np.ndarray, values: np.ndarray,
                lat: np.ndarray) -> None:
    xr.Dataset({name: (("lat", "lon"), values, {"units": units})},
               coords={"lat": lat, "lon": lon}, attrs={"substance": "CH4"}).to_netcdf(path)


def test_cell_area_sums_to_sphere() -> None:
    lat = np.arange(-89.5, 90.0, 1.0)
    total = grid_cell_area_m2(lat, 1.0, 1.0).sum() * 360
    assert total == pytest.approx(4 * np.pi * EARTH_RADIUS_M**2, rel=1e-12)


def test_edgar_sample_hot_cells_match_truth() -> None:
    for event_id in ("permian-ch4", "korpezhe-ch4"):
        truth = _truth(event_id)
        lon, lat = truth["source_lon"], truth["source_lat"]
        ds = read_edgar(EDGAR, bbox=(lon - 0.3, lat - 0.3, lon + 0.3, lat + 0.3))
        assert ds.attrs["instrument"] == "EDGAR" and ds.attrs["gas"] == "CH4"
        assert ds["emission_kg_h"].attrs["units"] == "kg h-1"
        cands = edgar_candidates(ds, bbox=None, min_emission_kg_h=1000.0, top_n=3)
        assert len(cands) == 1
        best = cands.iloc[0]
        assert best["emission_kg_h"] == pytest.approx(truth["emission_rate_kg_h"], rel=1e-5)
        assert abs(best["latitude"] - lat) <= 0.05 and abs(best["longitude"] - lon) <= 0.05
        assert best["facility_id"].startswith("EDGAR:") and best["sector"] == "EDGAR grid cell"
        assert 2000.0 < best["location_sd_m"] < 3500.0


def test_edgar_sample_is_small() -> None:
    for path in (GPPD, FACILITIES, EDGAR):
        assert path.stat().st_size < 1_000_000


def test_edgar_flux_variant_0_360_longitudes(tmp_path: Path) -> None:
    lat = np.array([10.05, 10.15])
    lon = np.array([359.85, 359.95, 0.05, 0.15])
    flux = np.full((2, 4), 1e-10)
    flux[1, 0] = 2e-10
    path = tmp_path / "v6.0_CH4_2018_TOTALS_flx.nc"
    _write_grid(path, "fluxes", "kg m-2 s-1", lon, flux, lat)
    ds = read_edgar(path)
    np.testing.assert_allclose(ds["lon"], [-0.15, -0.05, 0.05, 0.15], atol=1e-9)
    assert ds["flux_kg_m2_s"].sel(lat=10.15, lon=-0.15, method="nearest") == pytest.approx(2e-10)
    area = grid_cell_area_m2(np.array([10.15]), 0.1, 0.1)[0]
    assert float(ds["emission_kg_h"].sel(lat=10.15, lon=-0.15, method="nearest")) == pytest.approx(
        2e-10 * area * 3600.0)
    assert ds.attrs["time_coverage_start"] == "2018-01-01T00:00:00Z"
    window = read_edgar(path, bbox=(359.92, 10.0, 0.08, 10.2))
    np.testing.assert_allclose(window["lon"], [-0.05, 0.05], atol=1e-9)


def test_edgar_annual_total_converts_to_kg_h(tmp_path: Path) -> None:
    lat, lon = np.array([0.05, 0.15]), np.array([0.05, 0.15])
    path = tmp_path / "emi.nc"
    _write_grid(path, "emissions", "Tonnes", lon, np.full((2, 2), 8766.0), lat)
    ds = read_edgar(path)
    np.testing.assert_allclose(ds["emission_kg_h"], 1000.0, rtol=1e-12)
    np.testing.assert_allclose(ds["flux_kg_m2_s"] * ds["cell_area_m2"] * SECONDS_PER_YEAR, 8766e3, rtol=1e-12)


def test_edgar_wrong_units_names_variable(tmp_path: Path) -> None:
    path = tmp_path / "old.nc"
    _write_grid(path, "emi_ch4", "t/cell/yr", np.array([0.05, 0.15]), np.ones((2, 2)), np.array([0.05, 0.15]))
    with pytest.raises(ProductFormatError) as info:
        read_edgar(path)
    assert info.value.variable == "emi_ch4"


def test_edgar_missing_variable_and_empty_aoi(tmp_path: Path) -> None:
    path = tmp_path / "other.nc"
    _write_grid(path, "something", "1", np.array([0.05, 0.15]), np.ones((2, 2)), np.array([0.05, 0.15]))
    with pytest.raises(ProductFormatError):
        read_edgar(path)
    with pytest.raises(EmptyAOIError):
        read_edgar(EDGAR, bbox=(0.0, 0.0, 1.0, 1.0))
