"""Distributed execution on Celery: a real Redis broker on loopback, two ``dagster-celery`` worker
processes, the instance on a real PostgreSQL server, the daemon launching one run per event from the
``attribution_assets.definitions_celery`` code location; the events' steps spread over both workers,
which share one JAX compilation cache."""

from __future__ import annotations

import os
import re
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
from attribution_assets.partitions import register_events
from attribution_assets.paths import REPO_ROOT, SAMPLE_ALERTS, SAMPLE_ARCHIVE
from attribution_assets.resources import OutputStore
from attribution_assets_tests.processes import logged_process
from attribution_assets_tests.servers import RedisServer
from attribution_assets_tests.test_deploy.conftest import FAST_SETTINGS

BIN = Path(sys.executable).parent
WORKERS = ("worker-a", "worker-b")
NULL_EVENT = "CH4_20250903T074000Z_38.4950N_54.1950E"
"""The sample event with no source (its sampler is the slowest and adds nothing to what is tested here)."""


def _wait_ready(log: Path, offset: int = 0, timeout_s: float = 300.0) -> None:
    """Wait until a Celery worker logged, after byte ``offset``, that it is ready (connected to the
    broker, consuming)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = log.read_bytes()[offset:].decode(errors="replace") if log.exists() else ""
        if " ready." in text:
            return
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
    # three sample events: two CH4 (EMIT+TROPOMI+GHGSat), one CO2 (OCO-2); the no-source event is left out
    events = [e for e in read_alerts(SAMPLE_ALERTS) if e.key != NULL_EVENT]
    logs = {name: tmp_path / f"{name}.log" for name in WORKERS}

    @contextmanager
    def worker(name: str) -> Iterator[int]:
        """A running worker; yields the byte offset of its log at which this start's lines begin."""
        offset = logs[name].stat().st_size if logs[name].exists() else 0
        command = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                   "-y", str(REPO_ROOT / "deploy" / "celery.yaml"), "-n", name, "--", "--concurrency", "1"]
        with logged_process(command, logs[name], env, stop_timeout_s=30.0):
            _wait_ready(logs[name], offset)
            yield offset

    daemon = [sys.executable, "-m", "dagster._daemon", "run", "-w", str(workspace_yaml),
              "--log-level", "warning"]
    with (
        DagsterInstance.get() as instance,
        logged_process(daemon, tmp_path / "daemon.log", env, stop_timeout_s=30.0),
        WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace_yaml)])) as context,
    ):
        workspace = context.create_request_context()
        keys = register_events(instance, events)
        config = resources_config(SAMPLE_ARCHIVE, output, FAST_SETTINGS, live=False)

        def run(*partitions: str) -> list[RunProgress]:
            progress = [RunProgress(submit_run(instance, workspace, "attribute_event", config,
                                               partition_key=key,
                                               tags={"attribution/gas": key.split("_")[0]}).run_id, key)
                        for key in partitions]
            done = wait_for_runs(instance, progress, timeout_s=1500)
            assert [p.status for p in done] == [DagsterRunStatus.SUCCESS] * len(done)
            return done

        first, *rest = keys
        # 1. worker-a alone: the catalogue and the first event, which fills the compilation cache
        with worker("worker-a"):
            crawl = submit_run(instance, workspace, "crawl_catalog", config)
            (done,) = wait_for_runs(instance, [RunProgress(crawl.run_id, "crawl")], timeout_s=900)
            assert done.status == DagsterRunStatus.SUCCESS
            run(first)
        compiled = _cache_keys(cache)
        # 2. a new worker, worker-b alone, runs the same event again: it must find every program cached
        with worker("worker-b") as b_offset:
            (again,) = run(first)
            new_worker = _cache_lookups(logs["worker-b"], b_offset)
            # 3. both workers take the other events
            with worker("worker-a") as a_offset:
                b_shared = logs["worker-b"].stat().st_size
                together = run(*rest)
        steps = {p.label: _worker_of_steps(instance, p.run_id) for p in together}
        rerun_steps = _worker_of_steps(instance, again.run_id)

    # every step of the rerun ran on the new worker, and it compiled nothing the first event had compiled
    assert compiled, "the first event filled the shared compilation cache"
    assert {w.split("@")[0] for w in rerun_steps.values()} == {"worker-b"}, rerun_steps
    assert "source_posterior" in rerun_steps
    assert [key for kind, key in new_worker if kind == "miss" and key in compiled] == []
    assert any(kind == "hit" for kind, _ in new_worker), "the new worker read programs from the cache"
    # with both workers up, the events' steps spread over both, and every step ran on Celery
    per_worker = Counter(worker.split("@")[0] for by_step in steps.values() for worker in by_step.values())
    assert set(per_worker) == set(WORKERS), per_worker
    assert all("source_posterior" in by_step for by_step in steps.values())
    lookups = [*_cache_lookups(logs["worker-a"], a_offset), *_cache_lookups(logs["worker-b"], b_shared)]
    assert [key for kind, key in lookups if kind == "miss" and key in compiled] == []
    # every posterior row is present exactly once
    files = sorted((output / "posteriors").rglob("*.parquet"))
    rows = [key for path in files for key in gpd.read_parquet(path)["event_key"]]
    assert sorted(rows) == sorted(keys)
    store = OutputStore(root=str(output))
    assert all(store.posterior_path(event.iso_week, event.key).is_file() for event in events)
