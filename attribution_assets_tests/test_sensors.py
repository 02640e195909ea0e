"""The alert-inbox sensor never jams: bad files go to ``rejected/`` with a reason, good ones register.

Real Dagster instance, real files in the inbox, several ticks with the cursor carried over.
"""

from __future__ import annotations

import json

import pytest
from dagster import SensorResult, SkipReason, build_sensor_context, instance_for_test

from attribution_assets.events import read_alerts, registered_events
from attribution_assets.partitions import detection_events
from attribution_assets.resources import OutputStore
from attribution_assets.sensors import alert_inbox_sensor

HEADER = "event_id,event_time,latitude,longitude,gas\n"
PERMIAN = "permian,2025-08-14T17:31:00Z,31.9095,-103.61,CH4\n"
BELCHATOW = "belchatow,2025-06-10T12:10:00Z,51.266,19.3308,CO2\n"
KORPEZHE = "korpezhe,2025-09-03T07:40:00Z,38.495,54.195,CH4\n"
BAD_FILES = {
    "empty.csv": b"",
    "binary.csv": bytes(range(256)),
    "header_only.csv": HEADER.encode(),
    "features_not_a_list.geojson": json.dumps({"type": "FeatureCollection", "features": {}}).encode(),
    "point_without_coordinates.geojson": json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point"}, "properties": {"event_time": "2025-01-01T00:00Z"}}
    ]}).encode(),
}


class Ticks:
    """Evaluates the sensor tick after tick on one instance, carrying the cursor and applying the
    dynamic-partition requests the way the daemon does."""

    def __init__(self, instance, store: OutputStore) -> None:
        self.instance, self.store, self.cursor = instance, store, None

    def tick(self) -> SensorResult | SkipReason:
        with build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"store": self.store}
        ) as context:
            result = alert_inbox_sensor(context)
        if isinstance(result, SensorResult):
            self.cursor = result.cursor
            for request in result.dynamic_partitions_requests or []:
                self.instance.add_dynamic_partitions(detection_events.name, list(request.partition_keys))
        return result


def _requested(result: SensorResult | SkipReason) -> set[str]:
    return set() if isinstance(result, SkipReason) else {r.partition_key for r in result.run_requests or []}


@pytest.fixture
def inbox(tmp_path, monkeypatch):
    folder = tmp_path / "inbox"
    folder.mkdir()
    monkeypatch.setenv("ATTRIBUTION_ALERTS_INBOX", str(folder))
    return folder


def test_a_bad_file_then_a_good_file_over_several_ticks(tmp_path, inbox):
    store = OutputStore(root=str(tmp_path / "output"))
    (inbox / "empty.csv").write_bytes(b"")
    with instance_for_test() as instance:
        ticks = Ticks(instance, store)
        first = ticks.tick()  # the old sensor raised EmptyDataError here, on every tick
        assert isinstance(first, SensorResult) and _requested(first) == set()
        assert "rejected 1 file(s) ['empty.csv']" in first.skip_reason.skip_message
        assert not (inbox / "empty.csv").exists()
        assert (inbox / "rejected" / "empty.csv").read_bytes() == b""
        reason = (inbox / "rejected" / "empty.csv.reason.txt").read_text()
        assert "rejected empty.csv" in reason and f"{inbox / 'empty.csv'}: empty file (0 bytes)" in reason

        (inbox / "good.csv").write_text(HEADER + PERMIAN + BELCHATOW)
        keys = {e.key for e in read_alerts(inbox / "good.csv")}
        second = ticks.tick()
        assert _requested(second) == keys
        assert {e.key for e in registered_events(store.event_registry_path)} == keys

        third = ticks.tick()
        assert isinstance(third, SkipReason) and third.skip_message == "no new alert files"
        assert set(instance.get_dynamic_partitions(detection_events.name)) == keys


def test_bad_files_beside_good_ones_do_not_block_them(tmp_path, inbox):
    store = OutputStore(root=str(tmp_path / "output"))
    for name, content in BAD_FILES.items():
        (inbox / name).write_bytes(content)
    (inbox / "good.csv").write_text(HEADER + PERMIAN)
    (inbox / "notes.txt").write_text("not an alert file: ignored, left alone")
    with instance_for_test() as instance:
        ticks = Ticks(instance, store)
        first = ticks.tick()
        assert _requested(first) == {e.key for e in read_alerts(inbox / "good.csv")}
        rejected = inbox / "rejected"
        moved = sorted(p.name for p in rejected.iterdir() if not p.name.endswith(".reason.txt"))
        assert moved == sorted(BAD_FILES)
        for name, content in BAD_FILES.items():
            assert (rejected / name).read_bytes() == content  # moved intact, for the operator to fix
            assert str(inbox / name) in (rejected / f"{name}.reason.txt").read_text()
        assert sorted(p.name for p in inbox.iterdir()) == ["good.csv", "notes.txt", "rejected"]

        # the next tick requests nothing new; a later file with one old and one new event adds only the new
        assert isinstance(ticks.tick(), SkipReason)
        (inbox / "more.csv").write_text(HEADER + PERMIAN + KORPEZHE)
        third = ticks.tick()
        assert _requested(third) == {e.key for e in read_alerts(inbox / "more.csv")} - _requested(first)
        assert len(_requested(third)) == 1
        assert len(registered_events(store.event_registry_path)) == 2
        assert json.loads(ticks.cursor).keys() == {"good.csv", "more.csv"}


def test_a_name_rejected_twice_keeps_both_copies(tmp_path, inbox):
    store = OutputStore(root=str(tmp_path / "output"))
    with instance_for_test() as instance:
        ticks = Ticks(instance, store)
        (inbox / "alerts.csv").write_text(HEADER)
        ticks.tick()
        (inbox / "alerts.csv").write_text(HEADER + "x,yesterday,1,2,CH4\n")
        ticks.tick()
        rejected = sorted(p.name for p in (inbox / "rejected").iterdir())
        assert len(rejected) == 4 and "alerts.csv" in rejected and "alerts.csv.reason.txt" in rejected
        newer = next(name for name in rejected if name != "alerts.csv" and not name.endswith(".reason.txt"))
        reason = (inbox / "rejected" / f"{newer}.reason.txt").read_text()
        assert "row 2: event_time 'yesterday' is not ISO 8601" in reason
        assert (inbox / "rejected" / "alerts.csv").read_text() == HEADER
        (inbox / "alerts.csv").write_text(HEADER + PERMIAN)  # the fixed file, under the same name
        assert len(_requested(ticks.tick())) == 1


def test_a_bad_file_that_cannot_be_moved_is_skipped_not_retried(tmp_path, inbox):
    store = OutputStore(root=str(tmp_path / "output"))
    (inbox / "rejected").write_text("a file where the rejected/ folder should be")
    (inbox / "empty.csv").write_bytes(b"")
    (inbox / "good.csv").write_text(HEADER + PERMIAN)
    with instance_for_test() as instance:
        ticks = Ticks(instance, store)
        first = ticks.tick()
        assert len(_requested(first)) == 1 and (inbox / "empty.csv").exists()
        assert json.loads(ticks.cursor).keys() == {"empty.csv", "good.csv"}
        second = ticks.tick()
        assert isinstance(second, SkipReason) and second.skip_message == "no new alert files"
