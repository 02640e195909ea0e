"""Graceful shutdown and run monitoring with real processes and real signals: SIGTERM to a run process
or to ``attribution run`` ends the run within 10 s as canceled or failed with nothing half-written; a
run process killed with SIGKILL leaves a failed run, and re-executing it from failure resumes at the
failed steps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

from attribution_assets.atomic import process_alive
from attribution_assets.events import DetectionEvent
from attribution_assets.orchestration.config import resources_config
from attribution_assets.orchestration.daemon import STATE_FILE, daemon
from attribution_assets.orchestration.shutdown import (
    COMMAND_TAG,
    KILL_AFTER_S,
    SHUTDOWN_GRACE_S,
    cancel_runs_on_signal,
    run_worker_pid,
)
from attribution_assets.orchestration.submit import RunProgress, submit_run, wait_for_runs
from attribution_assets.orchestration.workspace import code_location, open_workspace
from attribution_assets.partitions import register_events
from attribution_assets.paths import REPO_ROOT, SAMPLE_ARCHIVE
from attribution_assets.resources import OutputStore
from attribution_assets_tests.test_deploy.conftest import FAST_SETTINGS

PERMIAN = DetectionEvent(datetime(2025, 8, 14, 17, 31, tzinfo=UTC), -103.61, 31.9095, "CH4", "permian")
LONG_SAMPLER = {"num_chains": 2, "num_warmup": 1500, "num_samples": 3000, "escalate": False}
"""A sampler whose inversion takes far longer than the shutdown grace, so only a stop ends it early."""
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@pytest.fixture()
def sqlite_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private embedded instance with the repository's dagster.yaml (queue, pools, run monitoring)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _queued_run(
    instance: DagsterInstance, config: dict, tags: dict | None = None,
    status: DagsterRunStatus = DagsterRunStatus.QUEUED,
) -> DagsterRun:
    """A run waiting in the queue (no daemon dequeues it here), or with another ``status``."""
    location = RegisteredCodeLocationOrigin("attribution_assets")
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "attribute_event")
    run = DagsterRun(job_name="attribute_event", run_config=config, status=status,
                     remote_job_origin=origin, tags=tags or {})
    return instance.add_run(run)


def test_sigterm_inside_the_guard_cancels_the_commands_queued_runs_and_exits_143(sqlite_home: Path) -> None:
    """Only the command's own runs: another command's run with the same run config, created while this
    one runs, stays queued (a stop once cancelled every unfinished run with the command's run config)."""
    config = resources_config(SAMPLE_ARCHIVE, "/tmp/out-a", FAST_SETTINGS)
    previous = signal.getsignal(signal.SIGTERM)  # whatever earlier tests in this process left
    with DagsterInstance.get() as instance:
        before = _queued_run(instance, config)  # created before the command started: not its run
        guard = cancel_runs_on_signal(instance, echo=lambda _: None)
        with pytest.raises(SystemExit) as stopped, guard as submitted:
            run = _queued_run(instance, config, submitted.tags)
            neighbour = _queued_run(instance, config, {COMMAND_TAG: "another-command"})
            assert submitted.run_ids() == [run.run_id]
            # created, not yet submitted (a stop between the two left it NOT_STARTED for ever)
            unsubmitted = _queued_run(instance, config, submitted.tags, DagsterRunStatus.NOT_STARTED)
            signalled = time.monotonic()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            pytest.fail("SIGTERM did not interrupt the command")
        assert stopped.value.code == 128 + signal.SIGTERM
        assert time.monotonic() - signalled < KILL_AFTER_S, "no run was left to wait for"
        for own in (run, unsubmitted):
            assert instance.get_run_by_id(own.run_id).status == DagsterRunStatus.CANCELED
        for untouched in (before, neighbour):
            assert instance.get_run_by_id(untouched.run_id).status == DagsterRunStatus.QUEUED
    assert signal.getsignal(signal.SIGTERM) == previous, "the previous handler is back"


# --- real runs through the daemon ----------------------------------------------------------------------


def _step_started(instance: DagsterInstance, run_id: str, step: str) -> bool:
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records
    return any(r.event_log_entry.step_key == step for r in records)


def _wait_for_step(instance: DagsterInstance, run_id: str, step: str, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not _step_started(instance, run_id, step):
        run = instance.get_run_by_id(run_id)
        assert run.status not in FINISHED, f"run ended ({run.status}) before {step} started"
        assert time.monotonic() < deadline, f"{step} did not start within {timeout_s} s"
        time.sleep(0.2)


def _wait_for_sampling(instance: DagsterInstance, run_id: str, timeout_s: float = 600.0) -> None:
    """Wait until the run's inversion logs that its sampler started (the MAP and Laplace fits are done;
    the main thread waits for the chain threads from then on)."""
    deadline = time.monotonic() + timeout_s
    while not any("sampling with" in (r.user_message or "") for r in instance.all_logs(run_id)):
        run = instance.get_run_by_id(run_id)
        assert run.status not in FINISHED, f"run ended ({run.status}) before sampling"
        assert time.monotonic() < deadline, f"sampling did not start within {timeout_s} s"
        time.sleep(0.2)


def _wait_finished(
    instance: DagsterInstance, run_id: str, timeout_s: float
) -> tuple[DagsterRunStatus, float]:
    """The run's final status and the seconds it took to get there from now."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        status = instance.get_run_by_id(run_id).status
        if status in FINISHED:
            return status, time.monotonic() - started
        time.sleep(0.1)
    return instance.get_run_by_id(run_id).status, time.monotonic() - started


def _half_written(output: Path) -> list[Path]:
    return [p for p in output.rglob("*") if p.name.endswith(".part") or p.name.startswith(".staging-")]


@pytest.fixture()
def served(sqlite_home: Path) -> Iterator[tuple[DagsterInstance, object]]:
    """The instance with a daemon serving it and a workspace on the code location."""
    with DagsterInstance.get() as instance, daemon(instance), open_workspace(instance) as workspace:
        yield instance, workspace


def _event_run(instance: DagsterInstance, workspace, output: Path, settings: dict) -> DagsterRun:
    """Crawl the sample archive into ``output``, then submit the Permian event's run."""
    (key,) = register_events(instance, [PERMIAN])
    config = resources_config(SAMPLE_ARCHIVE, output, settings, live=False)
    crawl = submit_run(instance, workspace, "crawl_catalog", config)
    (done,) = wait_for_runs(instance, [RunProgress(crawl.run_id, "crawl")], timeout_s=600)
    assert done.status == DagsterRunStatus.SUCCESS
    return submit_run(instance, workspace, "attribute_event", config, tags={"attribution/gas": "CH4"},
                      partition_key=key)


@pytest.mark.slow
def test_sigterm_to_a_run_process_ends_the_run_within_10_s(served, tmp_path: Path) -> None:
    instance, workspace = served
    output = tmp_path / "out"
    run = _event_run(instance, workspace, output, LONG_SAMPLER)
    _wait_for_sampling(instance, run.run_id)
    time.sleep(1)  # chains sampling
    pid = run_worker_pid(instance, instance.get_run_by_id(run.run_id))
    assert pid is not None and process_alive(pid)
    os.kill(pid, signal.SIGTERM)
    status, seconds = _wait_finished(instance, run.run_id, timeout_s=60)
    print(f"SIGTERM to the run process: run {status.value} after {seconds:.1f} s")
    assert status in {DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE}
    assert seconds <= SHUTDOWN_GRACE_S, f"the run ended {seconds:.1f} s after SIGTERM"
    store = OutputStore(root=str(output))
    assert not store.posterior_path(PERMIAN.iso_week, PERMIAN.key).exists()
    assert _half_written(output) == []


PERMIAN_ALERTS = ("event_id,event_time,latitude,longitude,gas\n"
                  "permian,2025-08-14T17:31:00Z,31.9095,-103.61,CH4\n")
LONG_FLAGS = ["--chains", "2", "--warmup", str(LONG_SAMPLER["num_warmup"]), "--samples",
              str(LONG_SAMPLER["num_samples"]), "--no-escalate", "--offline"]


@contextmanager
def _cli(tmp_path: Path, *argv: str) -> Iterator[subprocess.Popen]:
    """``attribution ARGV`` on the Permian alert, the sample archive and ``tmp_path/out``, in a child
    process (unbuffered; stdout and stderr together), killed at the end if it still runs."""
    alerts = tmp_path / "alerts.csv"
    alerts.write_text(PERMIAN_ALERTS)
    command = [sys.executable, "-m", "attribution_assets.cli", *argv, "--archive", str(SAMPLE_ARCHIVE),
               "--alerts", str(alerts), "--output", str(tmp_path / "out")]
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield cli
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        cli.stdout.close()


def _read_until(cli: subprocess.Popen, prefix: str) -> list[str]:
    """The command's lines up to and including the first that starts with ``prefix``."""
    lines: list[str] = []
    while not any(line.startswith(prefix) for line in lines):
        line = cli.stdout.readline()
        assert line, "".join(lines)
        lines.append(line)
    return lines


@pytest.mark.slow
def test_sigterm_to_attribution_run_terminates_its_runs_and_exits(sqlite_home: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    with _cli(tmp_path, "run", *LONG_FLAGS) as cli:
        lines = _read_until(cli, "submitted 1 event runs")
        with DagsterInstance.get() as instance:
            (run,) = [r for r in instance.get_runs() if r.job_name == "attribute_event"]
            _wait_for_sampling(instance, run.run_id)
            time.sleep(1)
            pid = run_worker_pid(instance, instance.get_run_by_id(run.run_id))
            assert pid is not None and process_alive(pid)
            cli.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            status, seconds = _wait_finished(instance, run.run_id, timeout_s=60)
            print(f"SIGTERM to attribution run: run {status.value} after {seconds:.1f} s")
            assert status in {DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE}
            assert seconds <= SHUTDOWN_GRACE_S, f"the run ended {seconds:.1f} s after SIGTERM"
            messages = [record.user_message or "" for record in instance.all_logs(run.run_id)]
            killed = [message for message in messages if "killed" in message]
            assert killed == [], "the run honoured the termination request; it was not killed"
        code = cli.wait(timeout=60)
        rest = cli.stdout.read()
        print(f"attribution run exited {code} {time.monotonic() - signalled:.1f} s after SIGTERM:\n{rest}")
        assert code == 128 + signal.SIGTERM, "".join(lines) + rest
        assert "SIGTERM: terminating 1 submitted runs" in rest
        deadline = time.monotonic() + 10
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not process_alive(pid), "the run process is gone"
    assert not OutputStore(root=str(output)).posterior_path(PERMIAN.iso_week, PERMIAN.key).exists()
    assert _half_written(output) == []


@pytest.mark.slow
def test_ctrl_c_of_attribution_backfill_cancels_its_backfill_and_runs(
    sqlite_home: Path, tmp_path: Path
) -> None:
    """Ctrl-C printed a KeyboardInterrupt traceback and left the backfill going: the next backfill of the
    week resumed it, and the week was computed twice."""
    with _cli(tmp_path, "backfill", "--week", PERMIAN.iso_week, *LONG_FLAGS) as cli:
        lines = _read_until(cli, "backfill ")
        with DagsterInstance.get() as instance:
            deadline = time.monotonic() + 300
            while not (runs := [r for r in instance.get_runs() if r.job_name != "crawl_catalog"]):
                assert time.monotonic() < deadline, "the daemon created no run of the backfill"
                time.sleep(0.5)
            (run,) = runs
            _wait_for_sampling(instance, run.run_id)
            cli.send_signal(signal.SIGINT)
            status, _ = _wait_finished(instance, run.run_id, timeout_s=60)
            assert status in {DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE}
            (backfill,) = instance.get_backfills()
            assert backfill.status in {BulkActionStatus.CANCELING, BulkActionStatus.CANCELED}
        code = cli.wait(timeout=60)
        rest = cli.stdout.read()
        assert code == 128 + signal.SIGINT, "".join(lines) + rest
        assert "SIGINT: terminating 1 submitted runs" in rest and "Traceback" not in rest, rest
        with DagsterInstance.get() as instance:  # not left cancelling: it can be re-executed from failure
            assert instance.get_backfill(backfill.backfill_id).status == BulkActionStatus.CANCELED
    assert _half_written(tmp_path / "out") == []


@pytest.mark.slow
def test_ctrl_c_while_the_command_starts_its_daemon_exits_cleanly(sqlite_home: Path, tmp_path: Path) -> None:
    """Ctrl-C while the daemon and the code location were starting printed a KeyboardInterrupt traceback
    (SIGTERM there ended the command before it stopped its daemon)."""
    with _cli(tmp_path, "run", "--offline") as cli:
        lines = _read_until(cli, "instance ")
        cli.send_signal(signal.SIGINT)
        code = cli.wait(timeout=120)
        rest = cli.stdout.read()
    assert code == 128 + signal.SIGINT, "".join(lines) + rest
    assert "received SIGINT: " in rest and "Traceback" not in rest, rest
    assert not (sqlite_home / STATE_FILE).exists(), "its daemon was stopped"
    with DagsterInstance.get() as instance:
        assert instance.get_daemon_heartbeats() == {}


@pytest.mark.slow
def test_killed_run_is_failed_and_reexecution_from_failure_resumes_at_the_failed_steps(
    served, tmp_path: Path
) -> None:
    instance, workspace = served
    output = tmp_path / "out"
    run = _event_run(instance, workspace, output, LONG_SAMPLER)
    _wait_for_step(instance, run.run_id, "source_posterior")
    pid = run_worker_pid(instance, instance.get_run_by_id(run.run_id))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    status, _ = _wait_finished(instance, run.run_id, timeout_s=120)
    assert status == DagsterRunStatus.FAILURE, "a run whose process was killed is marked failed"
    succeeded = {
        r.event_log_entry.step_key
        for r in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_SUCCESS).records
    }
    assert "event_overpasses" in succeeded and "source_posterior" not in succeeded

    parent = instance.get_run_by_id(run.run_id)
    location = code_location(workspace)
    repository = next(iter(location.get_repositories().values()))
    remote_job = location.get_job(JobSubsetSelector(
        location_name=location.name, repository_name=repository.name, job_name=parent.job_name,
        op_selection=None, asset_selection=parent.asset_selection,
    ))
    fast = resources_config(SAMPLE_ARCHIVE, output, FAST_SETTINGS, live=False)
    child = instance.create_reexecuted_run(
        request_context=workspace, parent_run=parent, code_location=location, remote_job=remote_job,
        strategy=ReexecutionStrategy.FROM_FAILURE, run_config=fast, use_parent_run_tags=True,
    )
    assert "event_overpasses" not in child.step_keys_to_execute
    assert "source_posterior" in child.step_keys_to_execute
    instance.submit_run(child.run_id, workspace)
    (done,) = wait_for_runs(instance, [RunProgress(child.run_id, "re-execution")], timeout_s=900)
    assert done.status == DagsterRunStatus.SUCCESS
    started = {
        r.event_log_entry.step_key
        for r in instance.get_records_for_run(child.run_id, of_type=DagsterEventType.STEP_START).records
    }
    assert started and not started & succeeded, "no step that succeeded before runs again"
    assert OutputStore(root=str(output)).posterior_path(PERMIAN.iso_week, PERMIAN.key).is_file()
