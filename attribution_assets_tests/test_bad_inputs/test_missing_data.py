"""Missing data never disappears without a word.

- AOIs that are all fill, all NaN or all cloud: either the reader says the AOI is empty
  (EmptyAOIError with the reason, recorded as the AOI outcome) or the instrument's observation block
  has 0 valid pixels, recorded per instrument ("0 valid pixels in AOI (<file>)") for the posterior
  row and the asset metadata.
- NaN wind in ERA5 or WRF fails with an error naming the file and the variable; zero wind is a calm,
  noted, with a speed uncertainty floor.
- An event outside every footprint finds no overpass, and every instrument says so.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.catalog.query import query_overpasses
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.pipeline.forward import build_blocks, valid_pixels
from attribution_assets.pipeline.posterior import instrument_outcomes
from attribution_assets.pipeline.settings import INSTRUMENTS
from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.era5 import read_era5
from attribution_assets.readers.errors import EmptyAOIError
from attribution_assets.readers.ghgsat import read_ghgsat_l2
from attribution_assets.readers.oco2 import read_oco2_lite
from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.readers.tropomi import read_tropomi_ch4
from attribution_assets.readers.wrf import read_wrf
from attribution_assets.science.detection.matched_filter import enhance_emit_scene
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.met.source import choose_met
from attribution_assets.science.met.wind import CALM_SPEED_SD_M_S, ERA5, WRF, OverpassWind, wind_at
from attribution_assets_tests.test_bad_inputs.corpus import PRODUCTS, fill_variable, good_copy

PERMIAN = (-103.6100, 31.9095)
PERMIAN_TIME = datetime(2025, 8, 14, 17, 31, tzinfo=UTC)
SMALL_BOX = (-103.66, 31.86, -103.56, 31.96)
WIDE_BOX = (-104.3, 31.3, -102.9, 32.5)
BELCHATOW = (19.3306, 51.2664)


def _wind(time: datetime) -> OverpassWind:
    return OverpassWind(time=time, u_m_s=3.0, v_m_s=1.0, speed_sd_m_s=1.5, direction_sd_rad=0.2,
                        stability_index=3.0, pblh_m=1000.0, surface_pressure_pa=90000.0, source="ERA5")


def _outcome(instrument: str, name: str, granules: dict, aoi_outcome: str = "read") -> str:
    """The recorded outcome of one instrument whose one granule ``name`` gave ``granules``."""
    frame = LocalFrame(*PERMIAN)
    keys = sorted(granules)
    by_instrument = {"EMIT": {}, "GHGSAT": {}, "TROPOMI": {}, "OCO2": {}, instrument: granules}
    blocks = build_blocks(frame, [_wind(PERMIAN_TIME)] * len(keys), keys, by_instrument["EMIT"],
                          by_instrument["GHGSAT"], by_instrument["TROPOMI"], by_instrument["OCO2"])
    outcomes = instrument_outcomes({instrument: {name: aoi_outcome}}, valid_pixels(blocks, keys))
    return outcomes[instrument]


@pytest.mark.parametrize(("variable", "value"), [("data/xch4", np.nan), ("data/quality_flag", 1)],
                         ids=["all-nan", "all-cloud"])
def test_ghgsat_aoi_without_valid_pixels_is_recorded(tmp_path, variable, value):
    path = fill_variable(good_copy(PRODUCTS["GHGSAT"], tmp_path), variable, value)
    ds = read_ghgsat_l2(path, bbox=SMALL_BOX)
    assert ds.sizes["y"] > 0
    assert _outcome("GHGSAT", path.name, {path.stem: ds}) == f"0 valid pixels in AOI ({path.name})"


def test_good_ghgsat_aoi_counts_its_valid_pixels(tmp_path):
    path = good_copy(PRODUCTS["GHGSAT"], tmp_path)
    ds = read_ghgsat_l2(path, bbox=SMALL_BOX)
    outcome = _outcome("GHGSAT", path.name, {path.stem: ds})
    assert outcome.endswith(f"valid pixels ({path.name})") and not outcome.startswith("0 ")


def test_tropomi_aoi_all_nan_xch4_is_recorded(tmp_path):
    path = fill_variable(good_copy(PRODUCTS["TROPOMI"], tmp_path),
                         "PRODUCT/methane_mixing_ratio_bias_corrected", np.nan)
    ds = read_tropomi_ch4(path, bbox=WIDE_BOX)
    assert ds.sizes["pixel"] > 0 and np.isnan(ds["xch4"].values).all()
    assert _outcome("TROPOMI", path.name, {path.stem: ds}) == f"0 valid pixels in AOI ({path.name})"


def test_tropomi_aoi_all_cloud_is_an_empty_aoi_with_the_reason(tmp_path):
    path = fill_variable(good_copy(PRODUCTS["TROPOMI"], tmp_path), "PRODUCT/qa_value", 0)
    with pytest.raises(EmptyAOIError, match="qa_value") as raised:
        read_tropomi_ch4(path, bbox=WIDE_BOX)
    assert raised.value.path == str(path)
    outcome = f"no data in AOI ({raised.value.reason})"
    assert instrument_outcomes({"TROPOMI": {path.name: outcome}}, {})["TROPOMI"] == f"{outcome} ({path.name})"


def test_emit_aoi_all_fill_glt_is_an_empty_aoi(tmp_path):
    path = fill_variable(good_copy(PRODUCTS["EMIT"], tmp_path), "location/glt_x", 0)
    with pytest.raises(EmptyAOIError, match="no GLT pixel with data") as raised:
        read_emit_l1b(path, bbox=SMALL_BOX)
    assert raised.value.path == str(path)


def test_emit_all_fill_radiance_reads_as_nan_and_filters_to_no_valid_pixel(tmp_path):
    path = fill_variable(good_copy(PRODUCTS["EMIT"], tmp_path), "radiance", -9999.0)
    ds = read_emit_l1b(path, bbox=SMALL_BOX)
    assert np.isnan(ds["radiance"].values).all()
    enhancement = enhance_emit_scene(ds, load_ch4_unit_absorption())
    assert enhancement["valid"].size > 0 and not enhancement["valid"].values.any()
    assert np.isnan(enhancement["ch4_enhancement_ppm_m"].values).all()


def test_oco2_all_fill_xco2_is_recorded(tmp_path):
    path = fill_variable(good_copy(PRODUCTS["OCO2"], tmp_path), "xco2", -999999.0)
    ds = read_oco2_lite(path, bbox=(BELCHATOW[0] - 1, BELCHATOW[1] - 1, BELCHATOW[0] + 1, BELCHATOW[1] + 1))
    assert ds.sizes["sounding"] > 0 and np.isnan(ds["xco2"].values).all()
    assert _outcome("OCO2", path.name, {path.stem: ds}) == f"0 valid pixels in AOI ({path.name})"


def test_every_instrument_has_an_outcome_even_when_nothing_ran():
    outcomes = instrument_outcomes(
        {"EMIT": {"-": "no overpass"}, "OCO2": {"-": "OCO2 does not measure CH4"}}, {}
    )
    assert set(outcomes) == set(INSTRUMENTS)
    assert outcomes["EMIT"] == "no overpass" and outcomes["OCO2"] == "OCO2 does not measure CH4"
    assert outcomes["GHGSAT"] == outcomes["TROPOMI"] == "not run"


@pytest.mark.parametrize("variable", ["u10", "v10"])
def test_nan_era5_wind_names_the_file_and_the_variable(tmp_path, variable):
    path = fill_variable(good_copy(PRODUCTS["ERA5"], tmp_path), variable, np.nan)
    era5 = read_era5(path)
    with pytest.raises(ValueError, match=variable) as raised:
        choose_met(*PERMIAN, PERMIAN_TIME, [era5])
    assert str(path.resolve()) in str(raised.value)
    assert "cannot convert" not in str(raised.value)


def test_nan_wrf_wind_names_the_file_and_the_variable(tmp_path):
    path = fill_variable(good_copy(PRODUCTS["WRF"], tmp_path), "U10", np.nan)
    wrf = read_wrf(path)
    lon, lat = float(wrf["lon"].mean()), float(wrf["lat"].mean())
    with pytest.raises(ValueError, match="'u10'") as raised:
        wind_at(wrf, WRF, lon, lat, wrf["time"].values[0])
    assert str(path.resolve()) in str(raised.value)


def test_zero_era5_wind_is_a_noted_calm_with_an_uncertainty_floor(tmp_path):
    path = good_copy(PRODUCTS["ERA5"], tmp_path)
    for variable in ("u10", "v10", "u100", "v100"):
        fill_variable(path, variable, 0.0)
    wind = wind_at(read_era5(path), ERA5, *PERMIAN, PERMIAN_TIME)
    assert wind.speed_m_s == 0.0
    assert wind.speed_sd_m_s >= CALM_SPEED_SD_M_S
    assert "calm" in wind.notes
    assert np.isfinite([wind.stability_index, wind.direction_sd_rad]).all()


def test_an_event_outside_every_footprint_finds_no_overpass(tmp_path):
    root = tmp_path / "archive"
    shutil.copytree(SAMPLE_ARCHIVE, root)
    catalog = write_geoparquet(crawl_archive(root).catalog, tmp_path / "catalog.parquet")
    middle_of_the_pacific = (-150.05, -20.05, -149.95, -19.95)
    found = query_overpasses(catalog, middle_of_the_pacific, PERMIAN_TIME - timedelta(hours=12),
                             PERMIAN_TIME + timedelta(hours=12))
    assert found.empty
    outcomes = instrument_outcomes({name: {"-": "no overpass"} for name in INSTRUMENTS}, {})
    assert set(outcomes.values()) == {"no overpass"}
