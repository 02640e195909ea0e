"""The new-overpass sensor on a real Dagster instance and real product files copied from the sample
archive: new files become catalog rows, scans, event partitions and runs; nothing runs twice; a new
overpass re-runs the events it covers; a batch leaves a backlog; bad files are rejected with a reason.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import shapely
from dagster import SensorResult, build_sensor_context, instance_for_test

from attribution_assets.events import DetectionEvent, registered_events
from attribution_assets.overpass_sensor import new_overpass_sensor
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.new_overpasses import (
    LEDGER_DIR,
    OverpassSettings,
    covering_rows,
    deduplicate,
    read_watch_list,
    run_key,
)
from attribution_assets.pipeline.settings import EventSettings
from attribution_assets.resources import build_resources

EMIT_PERMIAN = "emit/EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc"
ERA5_PERMIAN = "era5/era5_single_levels_permian-ch4_20250814.nc"
TROPOMI_PERMIAN = (
    "tropomi/S5P_OFFL_L2__CH4____20250814T193300_20250814T211354_40858_03_020600_20250815T211354.nc"
)
OCO2 = "oco2/oco2_LtCO2_250610_B11210Ar_250710000000s.nc4"
ERA5_OTHERS = [
    "era5/era5_single_levels_belchatow-co2_20250610.nc",
    "era5/era5_single_levels_korpezhe-ch4_20250721.nc",
    "era5/era5_single_levels_turkmen-null-ch4_20250903.nc",
]


class Ticks:
    """Evaluates the sensor tick after tick on one instance, carrying the cursor and adding the
    requested partitions the way the daemon does."""

    def __init__(self, instance, resources: dict[str, object]) -> None:
        self.instance, self.resources, self.cursor = instance, resources, None
        self.requested_run_keys: set[str] = set()

    def tick(self) -> SensorResult:
        with build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.resources
        ) as context:
            result = new_overpass_sensor(context)
        assert isinstance(result, SensorResult), result
        self.cursor = result.cursor
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(detection_events.name, list(request.partition_keys))
        keys = [r.run_key for r in result.run_requests or []]
        assert not self.requested_run_keys & set(keys), "a run key was requested twice"
        self.requested_run_keys |= set(keys)
        return result


def _event_runs(result: SensorResult) -> dict[str, str]:
    """partition key -> run key of the attribute_event requests."""
    return {r.partition_key: r.run_key for r in result.run_requests or [] if r.job_name == "attribute_event"}


def _ledger(output: Path, cursor: str) -> pd.DataFrame:
    """The sensor's ledger (files it has handled) named by ``cursor``."""
    return pd.read_parquet(output / LEDGER_DIR / f"ledger-{json.loads(cursor)['ledger']}.parquet")


def _copy(sample_archive: Path, archive: Path, *names: str) -> None:
    for name in names:
        target = archive / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_archive / name, target)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No Earthdata credentials anywhere (environment or netrc)."""
    for name in ("EARTHDATA_TOKEN", "EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("ATTRIBUTION_WATCH_LIST", raising=False)
    monkeypatch.delenv("ATTRIBUTION_OVERPASS_BATCH", raising=False)


@pytest.mark.slow
def test_new_files_register_events_and_a_new_overpass_reruns_them(tmp_path, sample_archive, offline):
    archive, output = tmp_path / "archive", tmp_path / "output"
    archive.mkdir()
    resources = build_resources(archive, output)
    store = resources["store"]
    with instance_for_test() as instance:
        ticks = Ticks(instance, resources)
        empty = ticks.tick()
        assert not empty.run_requests and "0 new file(s) taken" in empty.skip_reason.skip_message

        _copy(sample_archive, archive, EMIT_PERMIAN, ERA5_PERMIAN)
        first = ticks.tick()
        runs = _event_runs(first)
        assert len(runs) == 1  # the EMIT plume scan finds the Permian well pad
        (key,) = runs
        event = registered_events(store.event_registry_path)[0]
        assert event.key == key and event.gas == "CH4"
        assert abs(event.latitude - 31.9095) < 0.01 and abs(event.longitude + 103.61) < 0.01
        assert first.dynamic_partitions_requests[0].partition_keys == [key]
        assert instance.has_dynamic_partition(detection_events.name, key)
        assert runs[key].startswith(f"{key}:") and len(runs[key]) == len(key) + 17
        assert first.run_requests[0].tags["attribution/reason"] == "new event"
        catalog = pd.read_parquet(store.catalog_path)
        assert sorted(Path(p).name for p in catalog["path"]) == sorted(
            Path(n).name for n in (EMIT_PERMIAN, ERA5_PERMIAN)
        )

        again = ticks.tick()
        assert not again.run_requests and not again.dynamic_partitions_requests
        assert "0 new file(s) taken" in again.skip_reason.skip_message

        _copy(sample_archive, archive, TROPOMI_PERMIAN)  # a TROPOMI overpass 2 h after the event
        rerun = ticks.tick()
        assert _event_runs(rerun).keys() == {key}
        assert _event_runs(rerun)[key] != runs[key]  # new inputs, new run key
        assert rerun.run_requests[0].tags["attribution/reason"] == "new overpass"
        assert Path(TROPOMI_PERMIAN).name in rerun.run_requests[0].tags["attribution/granules"]
        assert not rerun.dynamic_partitions_requests  # the partition exists
        assert [e.key for e in registered_events(store.event_registry_path)] == [key]

        assert not ticks.tick().run_requests
        ledgers = list((output / LEDGER_DIR).glob("ledger-*.parquet"))
        assert json.loads(ticks.cursor)["ledger"] in {p.stem.removeprefix("ledger-") for p in ledgers}


def test_a_catalogued_archive_is_taken_as_seen_and_nothing_runs(tmp_path, sample_archive, offline):
    from attribution_assets.pipeline import update_catalog

    archive = tmp_path / "archive"
    _copy(sample_archive, archive, *ERA5_OTHERS)
    resources = build_resources(archive, tmp_path / "output")
    update_catalog(archive, resources["store"].catalog_files)
    with instance_for_test() as instance:
        result = Ticks(instance, resources).tick()
    assert not result.run_requests
    assert "0 new file(s) taken" in result.skip_reason.skip_message


@pytest.mark.slow
def test_a_batch_leaves_a_backlog_that_the_next_ticks_take(tmp_path, sample_archive, offline, monkeypatch):
    from dagster import Definitions

    from attribution_assets.assets.catalog import overpass_catalog
    from attribution_assets.jobs import catalog_job

    monkeypatch.setenv("ATTRIBUTION_OVERPASS_BATCH", "2")
    archive = tmp_path / "archive"
    _copy(sample_archive, archive, *ERA5_OTHERS, ERA5_PERMIAN, OCO2)
    (archive / "README.txt").write_text("not a product")
    (archive / "notes.csv").write_text("a,b\n1,2\n")
    (archive / "era5" / "broken.nc").write_bytes(b"")  # an interrupted ERA5 download
    resources = build_resources(archive, tmp_path / "output")
    with instance_for_test() as instance:
        ticks = Ticks(instance, resources)
        first = ticks.tick()  # 8 uncatalogued files > batch of 2: one crawl run, no file opened here
        assert [r.job_name for r in first.run_requests] == ["crawl_catalog"]
        assert not resources["store"].catalog_path.exists()
        crawl = first.run_requests[0]
        with build_sensor_context(instance=instance, cursor=ticks.cursor, resources=resources) as context:
            waiting = new_overpass_sensor(context)  # the same backlog asks for the same crawl run key
        assert [r.run_key for r in waiting.run_requests] == [crawl.run_key]

        defs = Definitions(assets=[overpass_catalog], jobs=[catalog_job], resources=resources)
        job = defs.resolve_job_def("crawl_catalog")
        assert job.execute_in_process(instance=instance, tags={"dagster/run_key": crawl.run_key}).success

        handled, messages = [], []  # files in the sensor's ledger after each tick: two more per tick
        for _ in range(4):
            result = ticks.tick()
            handled.append(len(_ledger(tmp_path / "output", ticks.cursor)))
            messages.append(result.skip_reason.skip_message if result.skip_reason else "")
        assert handled == [2, 4, 6, 8]
        crawls = [k for k in ticks.requested_run_keys if k.startswith("crawl:")]
        assert crawls == [crawl.run_key]  # the crawl run saw the junk: no second crawl run for it
        assert any("Rejected broken.nc: " in m and "0 bytes" in m for m in messages), messages
        ledger = _ledger(tmp_path / "output", ticks.cursor).set_index("path")["outcome"]
        assert ledger[str(archive / "README.txt")] == "ignored: not a product file"
        last = ticks.tick()
        assert not last.run_requests and "0 new file(s) taken; 0 rejected" in last.skip_reason.skip_message
        event_runs = [k for k in ticks.requested_run_keys if not k.startswith("crawl:")]
        assert len(event_runs) == 1  # the OCO-2 scan finds the Belchatow plant: one CO2 event
        assert registered_events(resources["store"].event_registry_path)[0].gas == "CO2"


def test_a_truncated_file_is_rejected_with_its_reason_and_the_others_go_on(
    tmp_path, sample_archive, offline
):
    archive = tmp_path / "archive"
    _copy(sample_archive, archive, OCO2, ERA5_OTHERS[0])
    broken = archive / TROPOMI_PERMIAN
    broken.parent.mkdir(parents=True)
    data = (sample_archive / TROPOMI_PERMIAN).read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    (archive / "README.txt").write_text("not a product")
    resources = build_resources(archive, tmp_path / "output")
    with instance_for_test() as instance:
        ticks = Ticks(instance, resources)
        with build_sensor_context(instance=instance, resources=resources) as context:
            first = new_overpass_sensor(context)
            ticks.cursor = first.cursor
        assert len(_event_runs(first)) == 1  # the OCO-2 granule still yields its event
        rejected = pd.read_csv(resources["store"].rejected_path)
        assert list(rejected["path"]) == [str(broken)]
        assert "truncated file" in rejected["reason"].iloc[0]
        ledger = _ledger(tmp_path / "output", first.cursor).set_index("path")
        assert ledger.loc[str(broken), "outcome"].startswith("rejected: ")
        assert ledger.loc[str(broken), "outcome"] == f"rejected: {rejected['reason'].iloc[0]}"
        assert ledger.loc[str(archive / "README.txt"), "outcome"] == "ignored: not a product file"
        assert "scan: 1 candidates, 1 events" in ledger.loc[str(archive / OCO2), "outcome"]
        again = ticks.tick()  # the rejected file is not reported again until it changes
        assert not again.run_requests and "0 rejected" in again.skip_reason.skip_message
        empty = archive / "emit" / "EMIT_L1B_RAD_001_20250814T173100_2522612_002.nc"
        empty.parent.mkdir()
        empty.write_bytes(b"")  # an interrupted download
        third = ticks.tick()
        assert not third.run_requests
        message = third.skip_reason.skip_message
        assert "1 new file(s) taken; 1 rejected" in message
        reasons = pd.read_csv(resources["store"].rejected_path).set_index("path")["reason"]
        assert f"Rejected {empty.name}: {reasons[str(empty)]}" in message


def test_without_credentials_the_earthdata_poll_is_off_and_says_why(tmp_path, offline, monkeypatch):
    archive = tmp_path / "archive"
    archive.mkdir()
    watch = tmp_path / "watch.csv"
    watch.write_text("name,west,south,east,north\npermian,-104.5,31.0,-103.0,32.5\n")
    monkeypatch.setenv("ATTRIBUTION_WATCH_LIST", str(watch))
    resources = build_resources(archive, tmp_path / "output")
    with instance_for_test() as instance:
        result = Ticks(instance, resources).tick()
        message = result.skip_reason.skip_message
        assert "Earthdata poll off: no credentials found; set EARTHDATA_TOKEN" in message
        monkeypatch.setenv("EARTHDATA_TOKEN", "not-a-real-token")
        monkeypatch.delenv("ATTRIBUTION_WATCH_LIST")
        result = Ticks(instance, resources).tick()  # credentials, but nothing to watch: no request made
        assert "Earthdata poll off: no watch list (ATTRIBUTION_WATCH_LIST is not set)" in (
            result.skip_reason.skip_message
        )
        resources_off = build_resources(archive, tmp_path / "output", live=False)
        result = Ticks(instance, resources_off).tick()
        assert "Earthdata poll off: live=False" in result.skip_reason.skip_message


def _event(
    hours: float = 0.0, lon: float = -103.61, lat: float = 31.9095, gas: str = "CH4"
) -> DetectionEvent:
    t = datetime(2025, 8, 14, 17, 31, tzinfo=UTC) + pd.Timedelta(hours=hours).to_pytimedelta()
    return DetectionEvent(time=t, longitude=lon, latitude=lat, gas=gas)


def test_detections_within_2_km_and_6_h_of_a_registered_event_are_that_event():
    registered = [_event()]
    near = _event(hours=5.9, lon=-103.61 + 0.015)  # ~1.4 km east
    later = _event(hours=6.1)
    far = _event(lon=-103.61 + 0.03)  # ~2.8 km east
    other_gas = _event(gas="CO2")
    kept = deduplicate([near, later, far, other_gas, _event(hours=6.2)], registered, 2.0, 6.0)
    assert kept == [later, far, other_gas]  # the last is within 6 h of `later`, kept before it


def test_a_granule_covers_an_event_by_window_aoi_and_gas():
    event = _event()
    settings = EventSettings()
    t = pd.Timestamp(event.time)
    rows = pd.DataFrame(
        {
            "instrument": ["TROPOMI", "TROPOMI", "TROPOMI", "OCO2", "ERA5"],
            "time_start": [t + pd.Timedelta(hours=h) for h in (2, 13, 2, 2, -1)],
            "time_end": [t + pd.Timedelta(hours=h) for h in (3, 14, 3, 3, 1)],
            "geometry": [
                shapely.box(-104.0, 31.0, -103.0, 32.0),
                shapely.box(-104.0, 31.0, -103.0, 32.0),  # outside the ± 12 h window
                shapely.box(-102.0, 31.0, -101.0, 32.0),  # 150 km east: outside the 60 km AOI
                shapely.box(-104.0, 31.0, -103.0, 32.0),  # OCO-2 does not measure CH4
                shapely.box(-103.7, 31.8, -103.5, 32.0),
            ],
        }
    )
    rows = __import__("geopandas").GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    assert covering_rows(rows, event, settings).tolist() == [True, False, False, False, True]
    assert run_key(event.key, "0123456789abcdef") == f"{event.key}:0123456789abcdef"


def test_watch_lists_and_settings_name_their_errors(tmp_path):
    good = tmp_path / "areas.geojson"
    good.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "korpezhe"},
         "geometry": {"type": "Polygon", "coordinates": [[[54, 38], [55, 38], [55, 39], [54, 39], [54, 38]]]}}
    ]}))
    assert [(a.name, a.bbox) for a in read_watch_list(good)] == [("korpezhe", (54.0, 38.0, 55.0, 39.0))]
    bad = tmp_path / "areas.csv"
    bad.write_text("name,west,south,east,north\npermian,-103,31,-104,32\n")
    with pytest.raises(ValueError, match=r"areas.csv row 2: box .* is not west < east"):
        read_watch_list(bad)
    assert OverpassSettings.from_env({"ATTRIBUTION_OVERPASS_BATCH": "50"}).batch_files == 50
    with pytest.raises(ValueError, match="ATTRIBUTION_OVERPASS_BATCH='many'"):
        OverpassSettings.from_env({"ATTRIBUTION_OVERPASS_BATCH": "many"})
    with pytest.raises(ValueError, match="batch_files must be at least 1"):
        OverpassSettings(batch_files=0)


@pytest.mark.slow  # a fresh interpreter imports numpy, pandas, JAX and the readers
def test_the_overpass_logic_and_the_scans_import_without_dagster():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import attribution_assets.pipeline.new_overpasses, attribution_assets.pipeline.detections\n"
        "print(sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
