"""Detection scans create events; the alert sensor registers them and requests their runs."""

from __future__ import annotations

import pandas as pd
from dagster import AssetSelection, SkipReason, build_sensor_context, instance_for_test, materialize

from attribution_assets.definitions import ASSETS
from attribution_assets.events import is_event_key, read_alerts, registered_events
from attribution_assets.partitions import detection_events
from attribution_assets.resources import build_resources
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
        events = read_alerts(inbox / "detections.csv")
        assert all(is_event_key(e.key) for e in events)

        store = resources["store"]
        first = alert_inbox_sensor(build_sensor_context(instance=instance, resources={"store": store}))
        assert {r.partition_key for r in first.run_requests} == {e.key for e in events}
        assert first.dynamic_partitions_requests[0].partition_keys == [e.key for e in events]
        instance.add_dynamic_partitions(detection_events.name, [e.key for e in events])
        assert {e.key for e in registered_events(store.event_registry_path)} == {e.key for e in events}
        again = alert_inbox_sensor(
            build_sensor_context(instance=instance, cursor=first.cursor, resources={"store": store})
        )
        assert isinstance(again, SkipReason) and again.skip_message == "no new alert files"
