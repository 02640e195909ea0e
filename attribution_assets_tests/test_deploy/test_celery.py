"""Distributed execution on Celery: a real Redis broker on loopback, two ``dagster-celery`` worker
processes, the instance on a real PostgreSQL server, the daemon launching one run per event from the
``attribution_assets.definitions_celery`` code location; the events' steps spread over both workers,
which share one JAX compilation cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from attribution_assets.definitions_celery import BACKEND_ENV, BROKER_ENV
from attribution_assets.events import read_alerts
from attribution_assets.orchestration.config import resources_config
from attribution_assets.orchestration.submit import RunProgress, submit_run, wait_for_runs
from attribution_assets.orchestration.workspace import stop_process_group
from attribution_assets.partitions import register_events
from attribution_assets.paths import REPO_ROOT, SAMPLE_ALERTS, SAMPLE_ARCHIVE
from attribution_assets.resources import OutputStore
from attribution_assets_tests.servers import RedisServer
from attribution_assets_tests.test_deploy.conftest import FAST_SETTINGS

BIN = Path(sys.executable).parent
WORKERS = ("worker-a", "worker-b")


@contextmanager
def _process(command: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A process in its own session (its children with it), stopped with SIGTERM then SIGKILL."""
    with open(log, "ab") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    try:
        yield process
    finally:
        stop_process_group(process, timeout_s=30.0)


def _wait_ready(log: Path, timeout_s: float = 300.0) -> None:
    """Wait until a Celery worker logged that it is ready (connected to the broker, consuming)."""
    deadline = time.monotonic() + timeout_s
    while " ready." not in log.read_text(errors="replace"):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text and time.monotonic() < deadline, text[-3000:]
        time.sleep(0.5)


def _worker_of_steps(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """Each step of the run and the Celery worker that executed it (the executor's engine events)."""
    found = {}
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records:
        entry = record.event_log_entry
        metadata = entry.dagster_event.engine_event_data.metadata if entry.dagster_event else {}
        if "Celery worker" in metadata and entry.step_key:
            found[entry.step_key] = metadata["Celery worker"].value
    return found


def _cache_keys(folder: Path) -> set[str]:
    """Keys of the programs in a JAX persistent compilation cache folder (``<key>-cache`` files)."""
    return {p.name.removesuffix("-cache") for p in folder.glob("*-cache")}


CACHE_LOG = re.compile(r"(?i)persistent compilation cache (hit|miss) for '[^']+' with key '([^']+)'")
"""JAX's log line for a persistent-cache lookup (JAX_LOG_COMPILES / JAX_EXPLAIN_CACHE_MISSES)."""


def _cache_lookups(log: Path, offset: int) -> list[tuple[str, str]]:
    """(``hit`` | ``miss``, cache key) of each lookup a worker logged after byte ``offset``."""
    with open(log, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    return [(m.group(1).lower(), m.group(2)) for m in CACHE_LOG.finditer(text)]


def test_redis_server_is_a_broker_on_loopback_only(redis: RedisServer) -> None:
    import redis as redis_client

    client = redis_client.Redis.from_url(redis.url)
    assert client.ping()
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    assert client.config_get("save")["save"] == "", "nothing persisted"
    client.close()


def test_celery_code_location_executes_every_job_on_celery() -> None:
    from attribution_assets.definitions import defs as embedded
    from attribution_assets.definitions_celery import defs

    for job in ("attribute_event", "crawl_catalog"):
        assert defs.resolve_job_def(job).executor_def.name == "attribution_celery_executor"
        assert embedded.resolve_job_def(job).executor_def.name == "in_process"
    assert set(defs.resolve_all_asset_keys()) == set(embedded.resolve_all_asset_keys())


@pytest.mark.slow
def test_event_runs_spread_over_two_celery_workers_sharing_one_compilation_cache(
    tmp_path: Path, pg_home: Path, redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    output, cache = tmp_path / "out", tmp_path / "jax_cache"
    shared = {BROKER_ENV: redis.url, BACKEND_ENV: redis.url, "ATTRIBUTION_JAX_CACHE_DIR": str(cache)}
    for name, value in shared.items():  # the daemon, its code server and the run processes
        monkeypatch.setenv(name, value)
    # the workers log each persistent-cache lookup
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "JAX_LOG_COMPILES": "1",
           "JAX_EXPLAIN_CACHE_MISSES": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    workspace_yaml = REPO_ROOT / "deploy" / "workspace-celery.yaml"
    events = read_alerts(SAMPLE_ALERTS)

    def worker(name: str):
        command = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                   "-y", str(REPO_ROOT / "deploy" / "celery.yaml"), "-n", name, "--", "--concurrency", "1"]
        return _process(command, tmp_path / f"{name}.log", env)

    daemon = [sys.executable, "-m", "dagster._daemon", "run", "-w", str(workspace_yaml),
              "--log-level", "warning"]
    with (
        DagsterInstance.get() as instance,
        worker(WORKERS[0]),
        worker(WORKERS[1]),
        _process(daemon, tmp_path / "daemon.log", env),
        WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace_yaml)])) as context,
    ):
        for name in WORKERS:
            _wait_ready(tmp_path / f"{name}.log")
        workspace = context.create_request_context()
        keys = register_events(instance, events)
        config = resources_config(SAMPLE_ARCHIVE, output, FAST_SETTINGS, live=False)

        def submit(key: str) -> RunProgress:
            run = submit_run(instance, workspace, "attribute_event", config, partition_key=key,
                             tags={"attribution/gas": key.split("_")[0]})
            return RunProgress(run.run_id, key)

        crawl = submit_run(instance, workspace, "crawl_catalog", config)
        (done,) = wait_for_runs(instance, [RunProgress(crawl.run_id, "crawl")], timeout_s=900)
        assert done.status == DagsterRunStatus.SUCCESS
        first, *rest = keys
        runs = wait_for_runs(instance, [submit(first)], timeout_s=1200)
        compiled = _cache_keys(cache)
        offsets = {name: (tmp_path / f"{name}.log").stat().st_size for name in WORKERS}
        runs += wait_for_runs(instance, [submit(key) for key in rest], timeout_s=1800)
        assert [p.status for p in runs] == [DagsterRunStatus.SUCCESS] * len(keys)
        steps = {p.label: _worker_of_steps(instance, p.run_id) for p in runs}

    per_worker = Counter(worker.split("@")[0] for by_step in steps.values() for worker in by_step.values())
    assert set(per_worker) == set(WORKERS), per_worker
    assert all("source_posterior" in by_step for by_step in steps.values()), "every step ran on Celery"
    inversions = Counter(steps[key]["source_posterior"].split("@")[0] for key in steps)
    # every posterior row is present exactly once
    files = sorted((output / "posteriors").rglob("*.parquet"))
    rows = [key for path in files for key in gpd.read_parquet(path)["event_key"]]
    assert sorted(rows) == sorted(keys)
    store = OutputStore(root=str(output))
    assert all(store.posterior_path(event.iso_week, event.key).is_file() for event in events)
    # the shared compilation cache: after the first event filled it, no worker compiled any of its
    # programs again (a lookup of a cached key is a hit, on either worker), and the cache served hits
    assert compiled, "the first event filled the shared compilation cache"
    lookups = {name: _cache_lookups(tmp_path / f"{name}.log", offsets[name]) for name in WORKERS}
    recompiled = [(name, key) for name, seen in lookups.items() for kind, key in seen
                  if kind == "miss" and key in compiled]
    assert recompiled == []
    hits = [(name, key) for name, seen in lookups.items() for kind, key in seen if kind == "hit"]
    assert hits, f"no persistent-cache hit after the first event (inversions on {dict(inversions)})"
