"""Benchmark: "backfill week W" of many events through the daemon, as ``attribution backfill`` runs it.

Events: the bundled sample archive's ``permian-ch4`` alert (2025-08-14T17:31Z, 31.9095 N 103.6100 W) at
``--events`` nearby times (every ``--step-min`` minutes from 17:31 UTC, all in ISO week 2025-W33, all
seeing the same EMIT/GHGSat/TROPOMI overpasses within the ±12 h window); generating a new archive per
event with ``attribution_assets.samples`` would cost more than the backfill itself. Each event is a
separate partition and a separate run (its own JAX compilation and sampling).

The command is ``attribution backfill --week 2025-W33 --alerts <the events> --offline`` with a cheap
sampler (``--chains 2 --warmup W --samples S --no-escalate``) on a fresh instance (``DAGSTER_HOME`` in the
work directory, the repository's ``dagster.yaml``: queued runs, at most 2 compute runs at a time) and a daemon
started for the command. Reported: events per hour (events / wall time from the backfill's creation to
its last run's end), each run's wall time, and the time per stage (the steps' ``STEP_START`` to
``STEP_SUCCESS`` on the instance: median, mean, max over events, seconds).

Usage: ``nice -n 10 .venv/bin/python benchmarks/bench_week_backfill.py [--events 20] [--warmup 150]
[--samples 150] [--workdir DIR] [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from report import write_results

from attribution_assets.paths import SAMPLE_ARCHIVE

WEEK = "2025-W33"
FIRST = datetime(2025, 8, 14, 17, 31, tzinfo=UTC)
LAT, LON = 31.9095, -103.6100


def write_events(path: Path, n: int, step_min: float) -> None:
    """An alert CSV of ``n`` permian events, ``step_min`` minutes apart from 17:31 UTC."""
    lines = ["event_id,event_time,latitude,longitude,gas"]
    for i in range(n):
        when = FIRST + timedelta(minutes=step_min * i)
        lines.append(f"bench-{i:02d},{when:%Y-%m-%dT%H:%M:%SZ},{LAT},{LON},CH4")
    path.write_text("\n".join(lines) + "\n")


def stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 2),
        "mean_s": round(statistics.fmean(values), 2),
        "max_s": round(max(values), 2),
    }


def measure(instance, backfill, sampler: dict, week: str = WEEK, max_runs: int = 2) -> dict:
    """The numbers of a week backfill from the instance: finished event runs, wall time, events per hour,
    run and stage durations (seconds). For a backfill still going, the wall time runs to now.
    ``max_runs``: the runs at once the backfill ran under (the queue's compute-run limit: every run of a
    week backfill carries the compute-run tag; the output key is ``max_concurrent_runs``)."""
    from attribution_assets.events import is_event_key
    from attribution_assets.orchestration.backfill import TERMINAL, backfill_runs, step_seconds

    runs = backfill_runs(instance, backfill.backfill_id)
    records = [instance.get_run_record_by_id(run.run_id) for run in runs]
    event_records = [r for r in records if is_event_key(r.dagster_run.tags.get("dagster/partition", ""))]
    rollups = [r for r in records if r not in event_records]
    finished = backfill.status in TERMINAL and all(r.end_time for r in records)
    end = max(r.end_time for r in records if r.end_time) if finished else time.time()
    wall_s = end - backfill.backfill_timestamp
    succeeded = sum(r.dagster_run.status.value == "SUCCESS" for r in event_records)
    steps = step_seconds(instance, [r.dagster_run.run_id for r in event_records])
    run_s = [r.end_time - r.start_time for r in event_records if r.start_time and r.end_time]
    rollup_s = [r.end_time - r.start_time for r in rollups if r.start_time and r.end_time]
    return {
        "week": week,
        "events": len(event_records),
        "events_succeeded": succeeded,
        "sampler": sampler,
        "backfill_id": backfill.backfill_id,
        "backfill_status": backfill.status.value,
        "finished": finished,
        "runs": len(runs),
        "backfill_wall_s": round(wall_s, 1),
        "events_per_hour": round(succeeded / wall_s * 3600.0, 1),
        "event_run_s": stats(run_s) if run_s else None,
        "rollup_run_s": stats(rollup_s) if rollup_s else None,
        "stage_s": {step: stats(values) for step, values in sorted(steps.items())},
        "max_concurrent_runs": max_runs,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--step-min", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--samples", type=int, default=150)
    parser.add_argument("--workdir", help="scratch directory (default: a temporary one)")
    parser.add_argument("--out", help="JSON results file (default: stdout)")
    parser.add_argument("--report-only", action="store_true",
                        help="only measure the week backfill already in --workdir (finished or still going)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_week_backfill_"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(work / "dagster_home")
    sampler = {"chains": 2, "warmup": args.warmup, "samples": args.samples, "escalate": False}

    from dagster import DagsterInstance

    from attribution_assets import cli
    from attribution_assets.orchestration.backfill import latest_week_backfill

    code = command_s = None
    if not args.report_only:
        alerts = work / "alerts.csv"
        write_events(alerts, args.events, args.step_min)
        argv = [
            "backfill", "--week", WEEK, "--archive", str(SAMPLE_ARCHIVE), "--output", str(work / "output"),
            "--alerts", str(alerts), "--chains", "2", "--warmup", str(args.warmup), "--samples",
            str(args.samples), "--no-escalate", "--offline",
        ]
        started = time.perf_counter()
        code = cli.main(argv)  # its progress goes to stdout: use --out for the results
        command_s = round(time.perf_counter() - started, 1)
    with DagsterInstance.get() as instance:
        backfill = latest_week_backfill(instance, WEEK)
        if backfill is None:
            raise SystemExit(f"no backfill of {WEEK} on the instance in {work}")
        results = {**measure(instance, backfill, sampler), "exit_code": code, "command_s": command_s}
    write_results(results, args.out)


if __name__ == "__main__":
    main()
