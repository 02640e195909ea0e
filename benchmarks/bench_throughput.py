"""Benchmark: throughput of a week's backfill of 42 generated, mixed events on 1 worker and on 2 workers.

The events (``mixed_week.py``): seven days of ISO week 2025-W33, six events a day, written as native
files into a fresh archive: CH4 with 1 to 3 instruments (EMIT, GHGSat, TROPOMI) at 0, 150, 400, 1,000,
3,000 and 10,000 kg/h, and CO2 power plants seen by OCO-2 at 0, 1.5, 4.2 and 9 kt/h; 16 of the 42 have
no source.

For each worker count ``w`` the command is ``attribution backfill --week 2025-W33 --archive <generated>
--alerts <generated> --offline`` with the production sampler settings, on a fresh instance whose
``dagster.yaml`` is the repository's with the compute-run limit (``attribution/queue: compute``: every
run of a week backfill carries it), the per-gas tag limit and the inversion pool all set to ``w`` (and
``max_concurrent_runs`` to ``w + 1``, as the repository's leaves one run beside them), its own output
root and its own (cold) JAX compilation cache, so both pay the same compilation. A worker is one
event run process at a time; each run's JAX uses the cores it gets.

Reported per worker count: events per hour (events / wall time from the backfill's creation to its
last run's end), run and stage times (``bench_week_backfill.measure``), run time per event class, and
the speed-up of 2 workers over 1.

Usage: ``.venv/bin/python benchmarks/bench_throughput.py [--workers 1 2] [--workdir DIR] [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import yaml
from bench_week_backfill import measure
from mixed_week import WEEK, write_week
from report import write_results

from attribution_assets.compilation import CACHE_ENV
from attribution_assets.jobs import QUEUE_TAG
from attribution_assets.paths import REPO_ROOT


def event_class(gas: str, rate_kg_h: float) -> str:
    """The validation class of an event: no source, CH4 < 300, 300-2000, > 2000 kg/h, or CO2."""
    if rate_kg_h == 0:
        return "no source"
    if gas == "CO2":
        return "CO2 power plant"
    if rate_kg_h < 300:
        return "CH4 < 300 kg/h"
    return "CH4 300-2000 kg/h" if rate_kg_h <= 2000 else "CH4 > 2000 kg/h"


def write_instance_config(home: Path, workers: int) -> None:
    """The repository's ``dagster.yaml`` in ``home`` with the compute-run and gas tag limits and the
    inversion pool set to ``workers``, and the run limit to ``workers + 1``."""
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    runs = config["concurrency"]["runs"]
    runs["max_concurrent_runs"] = workers + 1
    for limit in runs["tag_concurrency_limits"]:
        if limit["key"] in (QUEUE_TAG, "attribution/gas"):
            limit["limit"] = workers
    config["concurrency"]["pools"]["default_limit"] = workers
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def per_class_run_s(instance, backfill_id: str, classes: dict[str, str]) -> dict[str, dict[str, float]]:
    """Median and max run wall time (s) per event class, from the backfill's event runs."""
    from attribution_assets.orchestration.backfill import backfill_runs

    seconds: dict[str, list[float]] = {}
    for run in backfill_runs(instance, backfill_id):
        record = instance.get_run_record_by_id(run.run_id)
        key = run.tags.get("dagster/partition", "")
        if key in classes and record.start_time and record.end_time:
            seconds.setdefault(classes[key], []).append(record.end_time - record.start_time)
    return {
        name: {"n": len(v), "median_s": round(statistics.median(v), 1), "max_s": round(max(v), 1)}
        for name, v in sorted(seconds.items())
    }


def instrument_mismatches(output: Path, expected: dict[str, str]) -> list[str]:
    """Events whose posterior row lacks or adds an instrument against the generated files
    (``expected``: event id -> comma-separated instruments), and events without a row."""
    import geopandas as gpd

    rows = [gpd.read_parquet(path) for path in (output / "posteriors").rglob("*.parquet")]
    seen = {row["event_id"]: row["instruments"] for frame in rows for _, row in frame.iterrows()}
    return [
        f"{event_id}: {seen.get(event_id, 'no row')} (expected {instruments})"
        for event_id, instruments in sorted(expected.items())
        if seen.get(event_id) != instruments
    ]


def backfill_on(
    workers: int, archive: Path, alerts: Path, work: Path, classes: dict[str, str], expected: dict[str, str]
) -> dict:
    """Run and measure the week's backfill with ``workers`` concurrent runs; ``classes``: event key ->
    class, ``expected``: event id -> instruments."""
    from dagster import DagsterInstance

    from attribution_assets import cli
    from attribution_assets.orchestration.backfill import latest_week_backfill

    root = work / f"workers_{workers}"
    write_instance_config(root / "dagster_home", workers)
    os.environ["DAGSTER_HOME"] = str(root / "dagster_home")
    os.environ[CACHE_ENV] = str(root / "jax_cache")
    argv = ["backfill", "--week", WEEK, "--archive", str(archive), "--output", str(root / "output"),
            "--alerts", str(alerts), "--offline"]
    code = cli.main(argv)  # its progress goes to stdout
    with DagsterInstance.get() as instance:
        backfill = latest_week_backfill(instance, WEEK)
        numbers = measure(instance, backfill, {"sampler": "production defaults"}, WEEK, workers)
        numbers["run_s_per_class"] = per_class_run_s(instance, backfill.backfill_id, classes)
    numbers["instrument_mismatches"] = instrument_mismatches(root / "output", expected)
    return {**numbers, "exit_code": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workdir", help="scratch directory (default: a temporary one)")
    parser.add_argument("--out", help="JSON results file (default: stdout)")
    args = parser.parse_args()
    from attribution_assets.events import event_key, read_alerts

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_throughput_"))
    archive, alerts = work / "archive", work / "alerts.csv"
    week = write_week(archive, alerts)
    expected = {ev.event_id: ",".join(sorted(op.instrument for op in ops)) for ev, ops in week}
    by_id = {ev.event_id: event_class(ev.gas, ev.emission_rate_kg_h) for ev, _ in week}
    classes = {event_key(alert): by_id[alert.event_id] for alert in read_alerts(alerts)}
    results: dict[str, object] = {
        "events": len(week),
        "classes": {name: list(classes.values()).count(name) for name in sorted(set(classes.values()))},
        "cpus": os.cpu_count(),
    }
    for workers in args.workers:
        results[f"workers_{workers}"] = backfill_on(workers, archive, alerts, work, classes, expected)
        write_results(results, args.out)  # what is measured so far survives a later failure
    if {1, 2} <= set(args.workers):
        one, two = results["workers_1"], results["workers_2"]
        results["speed_up_2_over_1"] = round(two["events_per_hour"] / one["events_per_hour"], 2)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
