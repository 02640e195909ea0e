"""What an analyst sees in the UI: kinds and code versions on every per-event asset, tables with their
schemas and row counts, the event's summary card, and an attribution that never names a facility the
posterior all but rules out."""

from __future__ import annotations

import arviz as az
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, TableMetadataValue, instance_for_test

from attribution_assets.assets.attribution import attribution_metadata, ranked_table
from attribution_assets.assets.common import CODE_VERSION, ROW_COUNT, table_metadata
from attribution_assets.assets.posterior import attribution_text, summary_card
from attribution_assets.definitions import build_defs
from attribution_assets.events import record_events
from attribution_assets.partitions import register_events
from attribution_assets.pipeline.attribution import attribute, load_candidates
from attribution_assets.pipeline.posterior import attribution_columns
from attribution_assets.pipeline.settings import EventSettings
from attribution_assets.resources import AnalysisSettings, OutputStore, build_resources
from attribution_assets.science.attribution import UNLISTED_ID

OWNED = {
    "event_overpasses": {"geoparquet", "duckdb"},
    "emit_aoi": {"xarray", "netcdf"},
    "tropomi_aoi": {"xarray", "netcdf"},
    "ghgsat_aoi": {"xarray", "netcdf"},
    "oco2_aoi": {"xarray", "netcdf"},
    "emit_enhancement": {"xarray", "netcdf"},
    "met_conditions": {"xarray", "netcdf"},
    "plume_forward": {"jax", "xarray", "netcdf"},
    "quantification_baselines": {"geopandas", "geoparquet"},
    "source_posterior": {"numpyro", "jax", "netcdf"},
    "source_attribution": {"geopandas", "geoparquet"},
    "event_posterior": {"geopandas", "geoparquet"},
    "overpass_catalog": {"geoparquet", "duckdb"},
}
FAST = {"num_chains": 2, "num_warmup": 100, "num_samples": 100, "escalate": False}


def test_every_stage_has_its_kinds_and_the_code_version() -> None:
    graph = build_defs().resolve_asset_graph()
    for name, kinds in OWNED.items():
        node = graph.get(AssetKey(name))
        assert set(node.kinds) == kinds, name
        assert node.code_version == CODE_VERSION, name
    assert CODE_VERSION[0].isdigit(), "the package version"


def test_tables_carry_a_schema_and_rounded_values() -> None:
    frame = pd.DataFrame({"name": ["a", "b"], "rate_kg_h": [1234.5678, np.nan], "n": [3, 4],
                          "ok": [True, False], "geometry": [None, None]})
    value = table_metadata(frame, {"rate_kg_h": 1})
    assert isinstance(value, TableMetadataValue)
    assert [(c.name, c.type) for c in value.schema.columns] == [
        ("name", "string"), ("rate_kg_h", "float"), ("n", "int"), ("ok", "bool")]
    assert [r.data for r in value.records] == [
        {"name": "a", "rate_kg_h": 1234.6, "n": 3, "ok": True},
        {"name": "b", "rate_kg_h": None, "n": 4, "ok": False},
    ]


def _unlisted_attribution(sample_events) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """The Korpezhe facilities as candidates and a posterior whose source sits 2.5 km south-west of the
    alert, far from both: an unlisted source with probability ~1, KORPEZHE-A at ~1e-12 or less."""
    event = sample_events["korpezhe-ch4"]
    settings = EventSettings()
    candidates = load_candidates(event, settings)
    assert "KORPEZHE-A" in set(candidates["facility_id"])
    rng = np.random.default_rng(3)
    x, y = rng.normal(-1800.0, 40.0, (2, 400)), rng.normal(-1800.0, 40.0, (2, 400))
    idata = az.from_dict(posterior={"source_x_m": x, "source_y_m": y,
                                    "source_present": np.ones((2, 400), np.int8)})
    table, result = attribute(event, idata, candidates, settings)
    assert result is not None and result.p_unlisted > 0.999
    assert result.best_facility_id == "KORPEZHE-A" and result.best_probability < 1e-6
    return table, candidates


def test_an_unlisted_source_is_never_shown_as_a_listed_facility(sample_events) -> None:
    table, _ = _unlisted_attribution(sample_events)
    columns = attribution_columns(table)
    assert columns["attributed_facility_id"] == UNLISTED_ID
    assert columns["attributed_probability"] > 0.999
    metadata = attribution_metadata(table)
    assert metadata["attributed_facility_id"] == UNLISTED_ID
    assert metadata["attributed_facility_name"] == "source not in the inventory"
    assert metadata["attributed_probability"] == 1.0
    ranked = metadata["ranked"]
    assert [r.data["facility_id"] for r in ranked.records][0] == UNLISTED_ID
    assert [r.data["rank"] for r in ranked.records] == [1, 2, 3]
    assert all(r.data["probability"] == 0.0 for r in ranked.records[1:]), "rounded, no 6.5e-12"
    assert metadata[ROW_COUNT] == 3
    row = pd.Series({**columns, "detected": True})
    assert attribution_text(row) == "a source not in the inventory (probability 1.000)"
    assert "KORPEZHE" not in attribution_text(row)


def test_the_ranked_table_orders_by_probability_with_units() -> None:
    table = pd.DataFrame({"facility_id": ["B", UNLISTED_ID, "A"], "name": ["b", "u", "a"],
                          "sector": ["x", None, "y"], "distance_m": [812.34, np.nan, 30.6],
                          "probability": [0.2, 0.1, 0.7]})
    ranked = ranked_table(table)
    assert list(ranked["facility_id"]) == ["A", "B", UNLISTED_ID]
    assert list(ranked["distance_m"].fillna(-1)) == [31.0, 812.0, -1]
    assert list(ranked.columns) == ["rank", "facility_id", "name", "sector", "distance_m", "probability"]


@pytest.fixture(scope="module")
def null_event(tmp_path_factory, sample_archive, sample_events):
    """The sample null event (EMIT + TROPOMI near Korpezhe, no source) through ``attribute_event``."""
    output = tmp_path_factory.mktemp("ui")
    resources = build_resources(sample_archive, output, AnalysisSettings(**FAST), live=False)
    defs = build_defs(resources)
    event = sample_events["turkmen-null-ch4"]
    with instance_for_test() as instance:
        (key,) = register_events(instance, [event])
        record_events(OutputStore(root=str(output)).event_registry_path, [event])
        defs.resolve_job_def("crawl_catalog").execute_in_process(instance=instance)
        result = defs.resolve_job_def("attribute_event").execute_in_process(
            instance=instance, partition_key=key, raise_on_error=False
        )
        path = OutputStore(root=str(output)).posterior_path(event.iso_week, event.key)
        yield {"result": result, "row": gpd.read_parquet(path) if path.exists() else None}


def _metadata(result, asset: str) -> dict:
    (materialization,) = result.asset_materializations_for_node(asset)
    return materialization.metadata


@pytest.mark.slow
def test_the_event_card_and_the_row_table(null_event) -> None:
    assert null_event["result"].success
    row = null_event["row"]
    metadata = _metadata(null_event["result"], "event_posterior")
    assert metadata[ROW_COUNT].value == 1
    table = metadata["row"]
    assert isinstance(table, TableMetadataValue) and len(table.records) == 1
    names = [c.name for c in table.schema.columns]
    assert {"emission_rate_kg_h_p50", "latitude_deg", "source_location_sd_m", "p_source"} <= set(names)
    record = table.records[0].data
    assert record["emission_rate_kg_h_p95"] == round(float(row["emission_rate_kg_h_p95"].iloc[0]))
    assert record["p_source"] == round(float(row["p_source"].iloc[0]), 3)
    assert record["attributed_facility_id"] == row["attributed_facility_id"].iloc[0]
    card = metadata["summary"].value
    assert card.startswith(summary_card(row, None, 100.0).rsplit("\n", 1)[0]), "the card is the row's"
    for words in ("| gas | CH4 |", "| time (UTC) | 2025-09-03 07:40:00 |", "38.49500° N, 54.19500° E",
                  "| P(source present) |", "| emission rate, median |", "| 90 % interval |",
                  "| alert score, P(rate > 100 kg/h) |", "data:image/png;base64,"):
        assert words in card, words


@pytest.mark.slow
def test_the_null_event_is_attributed_consistently_everywhere(null_event) -> None:
    row = null_event["row"].iloc[0]
    attribution = _metadata(null_event["result"], "source_attribution")
    assert attribution["attributed_facility_id"].value == row["attributed_facility_id"]
    assert attribution["attributed_probability"].value == round(row["attributed_probability"], 3)
    ranked = attribution["ranked"]
    assert ranked.records[0].data["facility_id"] == row["attributed_facility_id"]
    assert attribution[ROW_COUNT].value == len(ranked.records)
    assert row["attributed_facility_id"] == UNLISTED_ID and row["attributed_probability"] > 0.99
    card = _metadata(null_event["result"], "event_posterior")["summary"].value
    assert "KORPEZHE" not in card and "a source not in the inventory (probability 1.000)" in card
    assert "KORPEZHE" not in str([r.data for r in ranked.records][0])


@pytest.mark.slow
def test_every_stage_reports_tables_with_row_counts(null_event) -> None:
    result = null_event["result"]
    for asset, key in (("met_conditions", "overpasses"), ("quantification_baselines", "estimates"),
                       ("emit_enhancement", "summary"), ("source_posterior", "predictive_residuals")):
        value = _metadata(result, asset)[key]
        assert isinstance(value, TableMetadataValue) and value.schema.columns, asset
    assert _metadata(result, "met_conditions")[ROW_COUNT].value == 2
    assert _metadata(result, "event_overpasses")[ROW_COUNT].value >= 2
    posterior = _metadata(result, "source_posterior")
    assert posterior["figure"].value.startswith("![figure](data:image/png;base64,")
    # the null event's TROPOMI granule reports surface_albedo_SWIR: its fitted artefact is on record
    (albedo,) = [r.data for r in posterior["albedo_artefacts"].records]
    assert albedo["block"].startswith("TROPOMI:") and albedo["units"] == "ppb"
    assert albedo["observations"] > 200
    assert 0.0 < albedo["slope_se"] < 100.0
    # its EMIT block's matched-filter errors are correlated: the fitted field is on record
    (field,) = [r.data for r in posterior["correlated_errors"].records]
    assert field["block"].startswith("EMIT:") and field["used"] is True and field["pixels"] >= 300
    assert field["conditional_variance"] < field["normalised_variance"]
    assert isinstance(posterior["emission_rate_kg_h"].value, float)
    # the sampler's work is on record: its own counts filled, the other sampler's empty
    work = {name: posterior[name].value for name in ("sampler", "mean_leapfrog_steps", "smc_temperatures",
                                                      "smc_acceptance", "map_laplace_s", "sampling_s")}
    assert work["map_laplace_s"] > 0.0 and work["sampling_s"] > 0.0, work
    if work["sampler"] == "smc":
        assert work["smc_temperatures"] >= 1 and 0.0 < work["smc_acceptance"] < 1.0, work
        assert work["mean_leapfrog_steps"] is None, work
    else:
        assert work["sampler"] == "nuts" and work["mean_leapfrog_steps"] > 0.0, work
        assert work["smc_temperatures"] == 0 and work["smc_acceptance"] is None, work
