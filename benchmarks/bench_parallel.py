"""Parallel execution on one machine: 2 runs x 1 core against 1 run x 2 cores for a small week backfill.

The workload is a week's worth of events on the bundled archive: each sample alert and copies of it
shifted by whole hours (still inside every overpass's ±12 h window), ``--copies`` per alert. Each event
is one ``attribute_event`` run executed in process, as a run process of the queue executes it.

- ``1x2``: one worker process with every core; events one after another (chains of one event run in
  parallel threads, XLA may use every core).
- ``2x1``: two worker processes, each pinned to one core (``sched_setaffinity``, set before JAX starts,
  so XLA's thread pool has one core), taking events from one queue: two events at once.

The catalog is crawled and the persistent compilation cache warmed (each alert once, in a throwaway output)
before timing, so both layouts load compiled programs instead of compiling. Reported: wall time of
the backfill (s), events per hour, per-event seconds, and the speed-up of ``2x1`` over ``1x2``.

    .venv/bin/python benchmarks/bench_parallel.py [--copies 2] [--chains 4 --warmup 300 --samples 300]
        [--out parallel.json]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from report import write_results

from attribution_assets.events import DetectionEvent, read_alerts
from attribution_assets.paths import SAMPLE_ALERTS, SAMPLE_ARCHIVE

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
"""Run config: only errors on the console."""


def week_of_events(copies: int) -> list[DetectionEvent]:
    """Each sample alert and ``copies - 1`` copies shifted by 1, 2, ... hours."""
    events = read_alerts(SAMPLE_ALERTS)
    return [
        replace(e, time=e.time + timedelta(hours=k), event_id=f"{e.event_id}+{k}h" if k else e.event_id)
        for e in events
        for k in range(copies)
    ]


def _settings(args: argparse.Namespace) -> dict[str, object]:
    return {"num_chains": args.chains, "num_warmup": args.warmup, "num_samples": args.samples,
            "escalate": False}


def _materialise(events: list[DetectionEvent], keys: list[str], output: Path, settings: dict) -> list[float]:
    """Run ``attribute_event`` in this process for each key (crawling the archive first when the output
    has no catalog); returns each run's seconds."""
    from dagster import DagsterInstance

    from attribution_assets.compilation import configure_jax
    from attribution_assets.definitions import defs
    from attribution_assets.orchestration.config import resources_config
    from attribution_assets.partitions import register_events

    configure_jax()
    config = resources_config(SAMPLE_ARCHIVE, output, settings, live=False) | QUIET
    seconds = []
    with DagsterInstance.ephemeral() as instance:
        register_events(instance, events)
        if not (output / "catalog").exists():
            defs.resolve_job_def("crawl_catalog").execute_in_process(run_config=config, instance=instance)
        job = defs.resolve_job_def("attribute_event")
        for key in keys:
            started = time.perf_counter()
            result = job.execute_in_process(run_config=config, instance=instance, partition_key=key,
                                            raise_on_error=False)
            seconds.append(time.perf_counter() - started)
            if not result.success:  # e.g. a blocking convergence check: the timing still counts
                print(f"{key}: run failed", flush=True)
    return seconds


def _worker(cpus: list[int], events: list[DetectionEvent], output: str, settings: dict, todo, done) -> None:
    """A worker process: pin to ``cpus`` before JAX starts, then take event keys from ``todo`` until it is
    empty, putting (key, seconds) on ``done``."""
    os.sched_setaffinity(0, cpus)
    while True:
        try:
            key = todo.get_nowait()
        except queue.Empty:
            return
        (seconds,) = _materialise(events, [key], Path(output), settings)
        done.put((key, seconds))


def backfill(layout: str, events: list[DetectionEvent], output: Path, settings: dict) -> dict:
    """Time the backfill of ``events`` into ``output`` with ``layout`` ``1x2`` or ``2x1``."""
    from attribution_assets.events import event_key

    cpus = sorted(os.sched_getaffinity(0))
    workers = [cpus] if layout == "1x2" else [[cpu] for cpu in cpus[:2]]
    context = mp.get_context("spawn")
    todo, done = context.Queue(), context.Queue()
    keys = [event_key(e) for e in events]
    for key in keys:
        todo.put(key)
    _materialise(events, [], output, settings)  # the crawl, untimed
    started = time.perf_counter()
    processes = [
        context.Process(target=_worker, args=(w, events, str(output), settings, todo, done)) for w in workers
    ]
    for process in processes:
        process.start()
    per_event = dict(done.get() for _ in keys)
    for process in processes:
        process.join()
    wall = time.perf_counter() - started
    return {
        "layout": layout,
        "workers": len(workers),
        "cores_per_worker": len(workers[0]),
        "events": len(keys),
        "wall_s": round(wall, 1),
        "events_per_hour": round(3600 * len(keys) / wall, 1),
        "event_s": {k: round(v, 1) for k, v in per_event.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2, help="events per sample alert (default 2)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--out", help="JSON results file (default: print)")
    args = parser.parse_args()
    events, settings = week_of_events(args.copies), _settings(args)
    results: dict[str, object] = {"cores": len(os.sched_getaffinity(0)), "settings": settings}
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        originals = [e.key for e in events[:: args.copies]]
        _materialise(events, originals, root / "warm", settings)  # fills the compilation cache
        results["warm_up_s"] = round(time.perf_counter() - started, 1)
        for layout in ("1x2", "2x1"):
            results[layout] = backfill(layout, events, root / layout, settings)
    results["speed_up_2x1_over_1x2"] = round(results["1x2"]["wall_s"] / results["2x1"]["wall_s"], 2)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
