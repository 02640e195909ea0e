"""Benchmark: the new-overpass sensor on an archive of 10,000 product files.

The archive: the 12 files of ``data/sample_archive`` hard-linked ``--copies`` times (default 834:
10,008 files) under distinct valid native names (EMIT orbit, TROPOMI orbit and OCO-2 day shifted;
ERA5 and GHGSat, found by content, renamed ``*_copyNNNNN``), by ``bench_catalog.build_archive``. The
event registry holds the 4 sample events and ``--events`` random registered events (CH4 and CO2 over
the sample regions, June-September 2025). Every tick is ``new_overpass_sensor`` evaluated with
``dagster.build_sensor_context`` on a real (SQLite) Dagster instance, with the Earthdata poll off.

Ticks timed (seconds, wall clock):

1. ``first_tick``: no catalog, no cursor (the uncatalogued archive): with more uncatalogued files than
   the batch, the tick lists the archive and requests one ``crawl_catalog`` run; it opens no file.
2. ``crawl_run``: that run, executed in process (the archive "catalogued once").
3. ``batch_tick``: the next tick of the same sensor: it takes at most the batch of files and scans the
   new EMIT, TROPOMI and OCO-2 granules until the scan budget is spent; the rest is the backlog.
4. ``adopt_tick``: a new sensor (no cursor) on the catalogued archive: the catalog is taken as seen.
5. ``idle_tick``: the next tick with nothing new (median of ``--repeats``).
6. ``new_overpass_tick``: one new TROPOMI granule (a copied file under a new orbit number) is
   catalogued, scanned and matched against the registered events, whose runs it requests.

Usage: ``.venv/bin/python benchmarks/bench_sensor_tick.py [--workdir DIR] [--copies 834] [--events 1000]
[--batch 200] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from bench_catalog import build_archive
from dagster import Definitions, SensorResult, build_sensor_context, instance_for_test
from report import write_results

from attribution_assets.assets.catalog import overpass_catalog
from attribution_assets.events import DetectionEvent, read_alerts, record_events
from attribution_assets.jobs import catalog_job
from attribution_assets.overpass_sensor import new_overpass_sensor
from attribution_assets.partitions import detection_events
from attribution_assets.paths import SAMPLE_ALERTS, SAMPLE_ARCHIVE
from attribution_assets.resources import build_resources

NEW_TROPOMI = "S5P_OFFL_L2__CH4____20250814T193300_20250814T211354_99999_03_020600_20250815T211354.nc"


def random_events(n: int, seed: int = 0) -> list[DetectionEvent]:
    """``n`` registered events near the sample sources (±1°), June-September 2025."""
    rng = np.random.default_rng(seed)
    sites = [(-103.61, 31.91, "CH4"), (19.33, 51.27, "CO2"), (54.20, 38.50, "CH4"), (53.0, 39.0, "CH4")]
    start = datetime(2025, 6, 1, tzinfo=UTC)
    events = []
    for i in range(n):
        lon, lat, gas = sites[i % len(sites)]
        events.append(
            DetectionEvent(
                time=start + timedelta(seconds=int(rng.integers(0, 120 * 86400))),
                longitude=lon + rng.uniform(-1, 1),
                latitude=lat + rng.uniform(-1, 1),
                gas=gas,
            )
        )
    return events


class Sensor:
    """Ticks of the sensor on one instance, cursor carried, partitions added as the daemon would."""

    def __init__(self, instance, resources: dict[str, object]) -> None:
        self.instance, self.resources, self.cursor = instance, resources, None

    def tick(self) -> tuple[float, SensorResult]:
        t0 = time.perf_counter()
        with build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources) as c:
            result = new_overpass_sensor(c)
        seconds = time.perf_counter() - t0
        self.cursor = result.cursor
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(detection_events.name, list(request.partition_keys))
        return seconds, result


def _summary(result: SensorResult) -> dict[str, object]:
    jobs = [r.job_name for r in result.run_requests or []]
    return {
        "attribute_event_runs": jobs.count("attribute_event"),
        "crawl_runs": jobs.count("crawl_catalog"),
        "partitions_added": sum(len(r.partition_keys) for r in result.dynamic_partitions_requests or []),
        "message": result.skip_reason.skip_message if result.skip_reason else "",
    }


def _ledger_size(output: Path, cursor: str) -> int:
    import pandas as pd

    from attribution_assets.pipeline.new_overpasses import LEDGER_DIR

    digest = json.loads(cursor)["ledger"]
    return len(pd.read_parquet(output / LEDGER_DIR / f"ledger-{digest}.parquet"))


def run(workdir: Path, copies: int, n_events: int, batch: int) -> dict[str, object]:
    archive, output = workdir / "archive", workdir / "output"
    shutil.rmtree(output, ignore_errors=True)
    t0 = time.perf_counter()
    n_files = build_archive(archive, copies)
    results: dict[str, object] = {"files": n_files, "build_archive_s": time.perf_counter() - t0}
    os.environ["ATTRIBUTION_OVERPASS_BATCH"] = str(batch)
    results["batch_files"] = batch
    resources = build_resources(archive, output, live=False)
    store = resources["store"]
    record_events(store.event_registry_path, list(read_alerts(SAMPLE_ALERTS)) + random_events(n_events))
    results["registered_events"] = n_events + 4
    with instance_for_test() as instance:
        sensor = Sensor(instance, resources)
        seconds, first = sensor.tick()
        results["first_tick_s"], results["first_tick"] = seconds, _summary(first)
        crawl = next(r for r in first.run_requests if r.job_name == "crawl_catalog")

        job = Definitions(assets=[overpass_catalog], jobs=[catalog_job], resources=resources).resolve_job_def(
            catalog_job.name
        )
        t0 = time.perf_counter()
        assert job.execute_in_process(instance=instance, tags={"dagster/run_key": crawl.run_key}).success
        results["crawl_run_s"] = time.perf_counter() - t0

        seconds, batch_result = sensor.tick()
        results["batch_tick_s"], results["batch_tick"] = seconds, _summary(batch_result)
        results["batch_tick"]["files_taken"] = _ledger_size(output, sensor.cursor)

        fresh = Sensor(instance, resources)
        results["adopt_tick_s"], adopt = fresh.tick()
        results["adopt_tick"] = _summary(adopt)
        idle = [fresh.tick()[0] for _ in range(3)]
        results["idle_tick_s"] = statistics.median(idle)
        results["idle_tick_all_s"] = idle

        target = archive / "new" / "tropomi" / NEW_TROPOMI
        target.parent.mkdir(parents=True, exist_ok=True)
        source = next((SAMPLE_ARCHIVE / "tropomi").glob("S5P_OFFL_L2__CH4____20250814T*.nc"))
        shutil.copyfile(source, target)
        results["new_overpass_tick_s"], new = fresh.tick()
        results["new_overpass_tick"] = _summary(new)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/attribution_bench/sensor"))
    parser.add_argument("--copies", type=int, default=834, help="rounds of the 12 sample files")
    parser.add_argument("--events", type=int, default=1000, help="random registered events")
    parser.add_argument("--batch", type=int, default=200, help="files per tick")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    results = run(args.workdir, args.copies, args.events, args.batch)
    for name in ("first_tick_s", "crawl_run_s", "batch_tick_s", "adopt_tick_s", "idle_tick_s",
                 "new_overpass_tick_s"):
        print(f"{name:22s} {results[name]:8.2f}")
    write_results(results, args.out)


if __name__ == "__main__":
    main()
