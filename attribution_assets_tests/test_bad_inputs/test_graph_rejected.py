"""Rejected product files end to end, on a real instance and a copy of the sample archive with:

- the Permian GHGSat scene truncated: the crawl rejects it; the Permian event runs on EMIT and TROPOMI
  and its posterior row, the ``ghgsat_aoi`` outcomes and the ``event_overpasses`` metadata name the
  file and the crawl's reason (never "no overpass");
- the Korpezhe ERA5 download without ``v10``: the crawl rejects it; the Korpezhe event fails in
  ``met_conditions`` with an error naming the rejected file and the variable, not "neither an ERA5 nor
  a WRF dataset was given"; nothing of its posterior is written.
"""

from __future__ import annotations

import json
import shutil

import geopandas as gpd
import pytest
from dagster import AssetSelection, instance_for_test, materialize

from attribution_assets.definitions import ASSETS
from attribution_assets.events import record_events
from attribution_assets.jobs import EVENT_ASSETS
from attribution_assets.orchestration.failures import step_failure
from attribution_assets.partitions import register_events
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.resources import AnalysisSettings, OutputStore, build_resources
from attribution_assets_tests.conftest import FAST_SAMPLER
from attribution_assets_tests.test_bad_inputs.corpus import PRODUCTS, remove_variable, truncate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rejected_run(tmp_path_factory, sample_events):
    root = tmp_path_factory.mktemp("rejected_graph") / "archive"
    shutil.copytree(SAMPLE_ARCHIVE, root)
    ghgsat = truncate(root / PRODUCTS["GHGSAT"].sample)
    era5 = remove_variable(root / "era5" / "era5_single_levels_korpezhe-ch4_20250721.nc", "v10")
    output = root.parent / "output"
    resources = build_resources(root, output, AnalysisSettings(**FAST_SAMPLER), live=False)
    events = [sample_events["permian-ch4"], sample_events["korpezhe-ch4"]]
    with instance_for_test() as instance:
        keys = register_events(instance, events)
        record_events(OutputStore(root=str(output)).event_registry_path, events)
        materialize(ASSETS, instance=instance, resources=resources,
                    selection=AssetSelection.assets("overpass_catalog"))
        results = {
            event.event_id: materialize(ASSETS, instance=instance, resources=resources, partition_key=key,
                                        selection=EVENT_ASSETS, raise_on_error=False)
            for event, key in zip(events, keys, strict=True)
        }
        yield {"results": results, "output": output, "ghgsat": ghgsat, "era5": era5,
               "events": dict(zip(["permian", "korpezhe"], events, strict=True))}


def test_a_rejected_ghgsat_scene_is_the_ghgsat_outcome_of_the_row(rejected_run):
    result = rejected_run["results"]["permian-ch4"]
    assert result.success
    event, ghgsat = rejected_run["events"]["permian"], rejected_run["ghgsat"]
    row = gpd.read_parquet(OutputStore(root=str(rejected_run["output"])).posterior_path(event.iso_week,
                                                                                        event.key))
    outcome = json.loads(row["instrument_outcomes"].iloc[0])["GHGSAT"]
    assert outcome.startswith("rejected by the catalog crawl: OSError: ") and "truncated file" in outcome
    assert outcome.endswith(f"({ghgsat.name})")
    assert row["instruments"].iloc[0].split(",") == ["EMIT", "TROPOMI"]
    posterior = result.asset_materializations_for_node("event_posterior")[0]
    assert posterior.metadata["instrument_outcomes"].value["GHGSAT"] == outcome
    aoi = result.asset_materializations_for_node("ghgsat_aoi")[0].metadata["outcomes"].value
    assert list(aoi) == [ghgsat.name] and "truncated file" in aoi[ghgsat.name]
    overpasses = result.asset_materializations_for_node("event_overpasses")[0].metadata
    assert list(overpasses["rejected_files"].value) == [str(ghgsat)]
    assert overpasses["granules"].value["GHGSAT"] == 0
    inputs = {item["path"] for item in json.loads(row["provenance"].iloc[0])["inputs"]}
    assert not any(ghgsat.name in path for path in inputs)


def test_a_rejected_era5_file_is_named_in_the_met_failure(rejected_run):
    result = rejected_run["results"]["korpezhe-ch4"]
    assert not result.success
    message = step_failure(result.all_events)
    assert message.startswith("met_conditions: no met data covers (54.2150, 38.5020) at 2025-07-21T06:5")
    assert f"the ERA5 file {rejected_run['era5']} was rejected by the catalog crawl" in message
    assert "variable 'v10': expected variable present" in message
    assert "neither an ERA5 nor a WRF dataset was given" not in message
    event = rejected_run["events"]["korpezhe"]
    store = OutputStore(root=str(rejected_run["output"]))
    assert not store.posterior_path(event.iso_week, event.key).exists()
