"""Detection scans create events; the alert sensor registers them and requests their runs."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from dagster import AssetSelection, SkipReason, build_sensor_context, instance_for_test, materialize

from attribution_assets.definitions import ASSETS
from attribution_assets.events import is_event_key, read_alerts, registered_events
from attribution_assets.partitions import detection_events
from attribution_assets.resources import build_resources
from attribution_assets.samples.truth import load_events
from attribution_assets.sensors import alert_inbox_sensor


def test_scans_drop_events_that_the_sensor_registers(tmp_path, monkeypatch, sample_archive, sample_events):
    inbox = tmp_path / "inbox"
    monkeypatch.setenv("ATTRIBUTION_ALERTS_INBOX", str(inbox))
    resources = build_resources(sample_archive, tmp_path / "output", live=False)
    with instance_for_test() as instance:
        result = materialize(
            ASSETS,
            instance=instance,
            resources=resources,
            selection=AssetSelection.assets("overpass_catalog", "detections"),
        )
        assert result.success
        table = pd.read_csv(inbox / "detections.csv")
        co2 = table[table["gas"] == "CO2"]
        assert len(co2) == 1 and co2["detected_in"].iloc[0].startswith("oco2_LtCO2_250610")
        plant = sample_events["belchatow-co2"]
        assert abs(co2["latitude"].iloc[0] - plant.latitude) < 0.2
        assert abs(co2["longitude"].iloc[0] - plant.longitude) < 0.2
        # EMIT: the Permian scene (6 t/h) yields one CH4 event at the well pad, the Turkmen null none
        emit = table[table["detected_in"].str.startswith("EMIT_L1B_RAD")]
        assert len(emit) == 1 and emit["gas"].iloc[0] == "CH4"
        assert emit["detected_in"].iloc[0] == "EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc"
        pad = next(e for e in load_events() if e.event_id == "permian-ch4")  # the true source
        assert abs(emit["latitude"].iloc[0] - pad.source_lat) < 0.0011  # two 60 m pixels
        assert abs(emit["longitude"].iloc[0] - pad.source_lon) < 0.0013
        assert emit["event_time"].iloc[0] == "2025-08-14T17:31:00Z"
        events = read_alerts(inbox / "detections.csv")
        assert all(is_event_key(e.key) for e in events)

        store = resources["store"]
        with build_sensor_context(instance=instance, resources={"store": store}) as context:
            first = alert_inbox_sensor(context)
        assert {r.partition_key for r in first.run_requests} == {e.key for e in events}
        assert first.dynamic_partitions_requests[0].partition_keys == [e.key for e in events]
        instance.add_dynamic_partitions(detection_events.name, [e.key for e in events])
        assert {e.key for e in registered_events(store.event_registry_path)} == {e.key for e in events}
        store_only = {"store": store}
        with build_sensor_context(instance=instance, cursor=first.cursor, resources=store_only) as context:
            again = alert_inbox_sensor(context)
        assert isinstance(again, SkipReason) and again.skip_message == "no new alert files"


@pytest.mark.slow
def test_tropomi_hotspot_becomes_an_event(tmp_path, monkeypatch, sample_archive, sample_events):
    """The Korpezhe TROPOMI granule regenerated at 40 t/h (the bundled one, 20 t/h, is a ~4-sigma
    two-pixel signal below the scan's threshold) yields a CH4 detection event at the source."""
    from dataclasses import replace

    from attribution_assets.samples.formats.tropomi import tropomi_ch4_filename, write_tropomi_ch4
    from attribution_assets.samples.simulate.tropomi import tropomi_scene
    from attribution_assets.samples.truth import load_overpasses
    from attribution_assets.samples.weather import era5_dataset
    from attribution_assets.times import parse_time

    archive = tmp_path / "archive"
    shutil.copytree(sample_archive, archive)
    event = next(e for e in load_events() if e.event_id == "korpezhe-ch4")
    op = next(
        o for o in load_overpasses() if o.event_id == event.event_id and o.instrument == "TROPOMI"
    )
    strong = replace(event, emission_rate_kg_h=40_000.0)
    ds = tropomi_scene(strong, op, era5_dataset(event), np.random.default_rng(300))
    path = archive / "tropomi" / tropomi_ch4_filename(
        parse_time(ds.attrs["time_coverage_start"]), parse_time(ds.attrs["time_coverage_end"]),
        int(ds.attrs["orbit"]),
    )
    write_tropomi_ch4(ds, path)
    assert path.exists() and len(list((archive / "tropomi").iterdir())) == 3  # replaced, not added
    inbox = tmp_path / "inbox"
    monkeypatch.setenv("ATTRIBUTION_ALERTS_INBOX", str(inbox))
    with instance_for_test() as instance:
        result = materialize(
            ASSETS,
            instance=instance,
            resources=build_resources(archive, tmp_path / "output"),
            selection=AssetSelection.assets("overpass_catalog", "detections"),
        )
        assert result.success
    table = pd.read_csv(inbox / "detections.csv")
    ch4 = table[(table["gas"] == "CH4") & (table["detected_in"] == path.name)]
    assert len(ch4) == 1
    source = sample_events["korpezhe-ch4"]
    assert abs(ch4["latitude"].iloc[0] - source.latitude) < 0.15
    assert abs(ch4["longitude"].iloc[0] - source.longitude) < 0.15
    assert is_event_key(ch4["event_id"].iloc[0])
