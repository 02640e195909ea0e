"""The bad-input corpus end to end, on a real instance and a copy of the sample archive with:

- the Permian GHGSat scene's XCH4 all NaN: the event runs on without GHGSat and both the posterior
  row and the asset metadata say "GHGSAT: 0 valid pixels in AOI (<file>)";
- a redelivered copy of the Permian EMIT granule without ``radiance`` in a folder that sorts later:
  it is rejected and the event still uses EMIT;
- the Korpezhe ERA5 file's ``u10`` all NaN: that event fails in ``met_conditions`` with an error
  naming the file and the variable; the Permian event is unaffected and nothing of Korpezhe's
  posterior is written;
- an event in the middle of the Pacific, outside every footprint: every AOI says "no overpass" and
  the event fails in ``source_posterior`` saying no instrument observed it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import geopandas as gpd
import numpy as np
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
from attribution_assets_tests.test_bad_inputs.corpus import PRODUCTS, fill_variable, remove_variable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, sample_events):
    root = tmp_path_factory.mktemp("bad") / "archive"
    shutil.copytree(SAMPLE_ARCHIVE, root)
    ghgsat = fill_variable(root / PRODUCTS["GHGSAT"].sample, "data/xch4", np.nan)
    emit = root / PRODUCTS["EMIT"].sample
    redelivered = root / "zz_redelivery" / emit.name
    redelivered.parent.mkdir()
    remove_variable(shutil.copy(emit, redelivered), "radiance")
    era5 = fill_variable(root / "era5" / "era5_single_levels_korpezhe-ch4_20250721.nc", "u10", np.nan)
    output = root.parent / "output"
    resources = build_resources(root, output, AnalysisSettings(**FAST_SAMPLER), live=False)
    pacific = replace(sample_events["permian-ch4"], longitude=-150.0, latitude=-20.0, event_id="pacific")
    events = [sample_events["permian-ch4"], sample_events["korpezhe-ch4"], pacific]
    with instance_for_test() as instance:
        keys = register_events(instance, events)
        record_events(OutputStore(root=str(output)).event_registry_path, events)
        catalog = materialize(ASSETS, instance=instance, resources=resources,
                              selection=AssetSelection.assets("overpass_catalog"))
        results = {
            event.event_id: materialize(ASSETS, instance=instance, resources=resources, partition_key=key,
                                        selection=EVENT_ASSETS, raise_on_error=False)
            for event, key in zip(events, keys, strict=True)
        }
        yield {"catalog": catalog, "results": results, "output": output, "ghgsat": ghgsat, "emit": emit,
               "redelivered": redelivered, "era5": era5,
               "events": dict(zip(["permian", "korpezhe", "pacific"], events, strict=True))}


def test_all_nan_ghgsat_is_recorded_in_the_row_and_the_metadata(bad_run):
    result = bad_run["results"]["permian-ch4"]
    assert result.success
    event = bad_run["events"]["permian"]
    row = gpd.read_parquet(OutputStore(root=str(bad_run["output"])).posterior_path(event.iso_week, event.key))
    expected = f"0 valid pixels in AOI ({bad_run['ghgsat'].name})"
    assert json.loads(row["instrument_outcomes"].iloc[0])["GHGSAT"] == expected
    assert "GHGSAT" not in row["instruments"].iloc[0].split(",")
    posterior = result.asset_materializations_for_node("event_posterior")[0]
    assert posterior.metadata["instrument_outcomes"].value["GHGSAT"] == expected
    forward = result.asset_materializations_for_node("plume_forward")[0]
    assert forward.metadata["valid_pixels"].value["GHGSAT"] == {bad_run["ghgsat"].stem: 0}


def test_a_broken_redelivery_is_rejected_and_emit_still_serves_the_event(bad_run):
    catalog = bad_run["catalog"].asset_materializations_for_node("overpass_catalog")[0]
    rejected = [record.data["path"] for record in catalog.metadata["rejected"].records]
    assert str(bad_run["redelivered"]) in rejected
    event = bad_run["events"]["permian"]
    row = gpd.read_parquet(OutputStore(root=str(bad_run["output"])).posterior_path(event.iso_week, event.key))
    assert "EMIT" in row["instruments"].iloc[0].split(",")
    inputs = {item["path"] for item in json.loads(row["provenance"].iloc[0])["inputs"]}
    archive = bad_run["emit"].parents[1]
    emit, redelivered = (p.relative_to(archive).as_posix() for p in (bad_run["emit"], bad_run["redelivered"]))
    assert emit in inputs and redelivered not in inputs, "input paths relative to the archive root"


def test_nan_era5_wind_fails_the_event_naming_file_and_variable_others_unaffected(bad_run):
    result = bad_run["results"]["korpezhe-ch4"]
    assert not result.success
    message = step_failure(result.all_events)
    assert message.startswith("met_conditions") and "'u10'" in message
    assert str(bad_run["era5"].resolve()) in message
    event = bad_run["events"]["korpezhe"]
    assert not OutputStore(root=str(bad_run["output"])).posterior_path(event.iso_week, event.key).exists()
    assert bad_run["results"]["permian-ch4"].success


def test_an_event_outside_every_footprint_says_so_for_every_instrument(bad_run):
    result = bad_run["results"]["pacific"]
    assert not result.success
    for name in ("emit_aoi", "tropomi_aoi", "ghgsat_aoi"):
        outcomes = result.asset_materializations_for_node(name)[0].metadata["outcomes"].value
        assert outcomes == {"-": "no overpass"}, name
    assert "no instrument observed the event" in step_failure(result.all_events)
    assert bad_run["results"]["permian-ch4"].success
