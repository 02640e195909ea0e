"""The whole event-partitioned graph materialised on the bundled sample archive, on a real instance."""

from __future__ import annotations

import json

import geopandas as gpd
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, instance_for_test, materialize

from attribution_assets.definitions import ASSETS
from attribution_assets.events import record_events
from attribution_assets.jobs import EVENT_ASSETS
from attribution_assets.partitions import detection_events, partition_of_week, register_events
from attribution_assets.resources import AnalysisSettings, OutputStore, build_resources
from attribution_assets_tests.conftest import FAST_SAMPLER

# every test here reads the graph materialised once by the module fixture (minutes on 2 cores)
pytestmark = pytest.mark.slow

DESIGN_COLUMNS = {
    "event_key",
    "event_time",
    "gas",
    "latitude",
    "longitude",
    "source_lon",
    "source_lat",
    "source_location_sd_m",
    "emission_rate_kg_h",
    "emission_rate_kg_h_p05",
    "emission_rate_kg_h_p50",
    "emission_rate_kg_h_p95",
    "emission_rate_kg_h_sd",
    "instruments",
    "detected",
    "method",
    "r_hat_max",
    "ess_bulk_min",
    "divergences",
    "alert_score",
    "provenance",
    "geometry",
}


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory, sample_archive, sample_events):
    """Materialise the catalog, every sample event and the weekly roll-ups once for this module."""
    output = tmp_path_factory.mktemp("output")
    resources = build_resources(sample_archive, output, AnalysisSettings(**FAST_SAMPLER), live=False)
    with instance_for_test() as instance:
        events = list(sample_events.values())
        keys = register_events(instance, events)
        record_events(OutputStore(root=str(output)).event_registry_path, events)
        results = {
            "catalog": materialize(
                ASSETS,
                instance=instance,
                resources=resources,
                selection=AssetSelection.assets("overpass_catalog"),
            )
        }
        for event, key in zip(events, keys, strict=True):
            results[event.event_id] = materialize(
                ASSETS,
                instance=instance,
                resources=resources,
                partition_key=key,
                selection=EVENT_ASSETS,
                raise_on_error=False,
            )
        for week in sorted({event.iso_week for event in events}):
            results[f"rollup {week}"] = materialize(
                ASSETS,
                instance=instance,
                resources=resources,
                partition_key=partition_of_week(week),
                selection=AssetSelection.assets("weekly_posteriors", "alerts"),
            )
        yield {
            "instance": instance,
            "output": output,
            "results": results,
            "keys": dict(zip(sample_events, keys, strict=True)),
        }


def _posterior(graph_run, sample_events, event_id) -> gpd.GeoDataFrame:
    event = sample_events[event_id]
    path = OutputStore(root=str(graph_run["output"])).posterior_path(event.iso_week, event.key)
    assert path.exists(), f"no posterior partition at {path}"
    return gpd.read_parquet(path)


def test_every_event_run_succeeds(graph_run):
    failed = [name for name, result in graph_run["results"].items() if not result.success]
    assert failed == []


def test_runs_are_recorded_in_the_instance(graph_run):
    instance: DagsterInstance = graph_run["instance"]
    assert set(instance.get_dynamic_partitions(detection_events.name)) == set(graph_run["keys"].values())
    for asset in (
        "event_overpasses",
        "emit_aoi",
        "emit_enhancement",
        "met_conditions",
        "plume_forward",
        "source_posterior",
        "event_posterior",
    ):
        materialised = instance.get_materialized_partitions(asset_key=AssetKey(asset))
        assert set(graph_run["keys"].values()) <= materialised, asset


def test_posterior_partition_has_the_design_schema(graph_run, sample_events):
    event = sample_events["permian-ch4"]
    path = OutputStore(root=str(graph_run["output"])).posterior_path(event.iso_week, event.key)
    assert path.parent.name == "week=2025-W33" and path.name == f"{event.key}.parquet"
    frame = gpd.read_parquet(path)
    assert set(frame.columns) >= DESIGN_COLUMNS
    assert len(frame) == 1 and frame.geometry.iloc[0].geom_type == "Point"
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo["version"] == "1.1.0" and "covering" in geo["columns"]["geometry"]
    provenance = json.loads(frame["provenance"].iloc[0])
    assert provenance["inputs"] and provenance["graph_hash"] and provenance["versions"]["numpyro"]


def test_multi_instrument_event_recovers_truth(graph_run, sample_events, sample_truth):
    row = _posterior(graph_run, sample_events, "permian-ch4").iloc[0]
    assert set(row["instruments"].split(",")) == {"EMIT", "GHGSAT", "TROPOMI"}
    truth = sample_truth.loc["permian-ch4", "emission_rate_kg_h"]
    assert row["emission_rate_kg_h_p05"] <= truth <= row["emission_rate_kg_h_p95"]
    assert bool(row["detected"])
    assert row["alert_score"] > 0.9


def test_null_event_is_not_detected(graph_run, sample_events):
    row = _posterior(graph_run, sample_events, "turkmen-null-ch4").iloc[0]
    assert not bool(row["detected"])
    assert row["emission_rate_kg_h_p05"] == 0.0


def test_co2_power_plant_event_uses_oco2(graph_run, sample_events, sample_truth):
    row = _posterior(graph_run, sample_events, "belchatow-co2").iloc[0]
    assert row["instruments"] == "OCO2" and row["gas"] == "CO2"
    assert bool(row["detected"])


def test_absent_instruments_are_recorded_not_errors(graph_run, sample_events):
    result = graph_run["results"]["belchatow-co2"]
    emit = result.asset_materializations_for_node("emit_aoi")[0]
    assert emit.metadata["granules_read"].value == 0


def test_sources_are_attributed_to_their_facilities(graph_run, sample_events):
    permian = _posterior(graph_run, sample_events, "permian-ch4").iloc[0]
    assert (
        permian["attributed_facility_name"] == "Permian well pad A"
        and permian["attributed_probability"] > 0.9
    )
    plant = _posterior(graph_run, sample_events, "belchatow-co2").iloc[0]
    assert plant["attributed_facility_name"] == "Belchatow" and plant["attributed_probability"] > 0.5


def test_baselines_are_reported_next_to_the_posterior(graph_run, sample_events):
    permian = _posterior(graph_run, sample_events, "permian-ch4").iloc[0]
    assert permian["ime_instrument"] == "EMIT" and permian["ime_emission_rate_kg_h"] > 0
    assert permian["csf_emission_rate_kg_h"] > 0 and permian["ime_emission_rate_kg_h_sd"] > 0
    null = _posterior(graph_run, sample_events, "turkmen-null-ch4").iloc[0]
    assert null["ime_instrument"] == ""


def test_weekly_rollup_and_alerts(graph_run, sample_events):
    weekly = graph_run["output"] / "weekly"
    weeks = sorted(p.name for p in weekly.glob("week=*"))
    assert weeks == sorted({f"week={e.iso_week}" for e in sample_events.values()})
    permian_week = weekly / f"week={sample_events['permian-ch4'].iso_week}"
    rollup = gpd.read_parquet(permian_week / "posteriors.parquet")
    assert sample_events["permian-ch4"].key in set(rollup["event_key"])
    alerts = json.loads((permian_week / "alerts.geojson").read_text())
    assert [f["properties"]["event_id"] for f in alerts["features"]] == ["permian-ch4"]
