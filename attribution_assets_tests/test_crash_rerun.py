"""A run killed with SIGKILL mid-way leaves nothing half-written, and the re-run writes the identical row.

Real processes: ``attribution run`` in a child process, killed with the daemon it started (and so the
run's process) once the forward model is stored (the inversion is then running), as a machine's crash
would, and re-run into the same output folder and instance.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
import psutil
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from attribution_assets.orchestration.daemon import STATE_FILE
from attribution_assets.paths import SAMPLE_ALERTS, SAMPLE_ARCHIVE

pytestmark = pytest.mark.slow

FAST = ["--chains", "2", "--warmup", "100", "--samples", "100", "--no-escalate", "--offline"]
EVENT_ID = "belchatow-co2"


def _alerts(tmp_path: Path) -> Path:
    alerts = pd.read_csv(SAMPLE_ALERTS)
    path = tmp_path / "alerts.csv"
    alerts[alerts["event_id"] == EVENT_ID].to_csv(path, index=False)
    return path


def _start(alerts: Path, output: Path, home: Path) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "attribution_assets.cli", "run", "--archive", str(SAMPLE_ARCHIVE),
               "--alerts", str(alerts), "--output", str(output), *FAST]
    return subprocess.Popen(command, env={**os.environ, "DAGSTER_HOME": str(home)}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    return out


def _row(output: Path) -> pd.DataFrame:
    paths = sorted((output / "posteriors").rglob("*.parquet"))
    assert len(paths) == 1, paths
    return pd.DataFrame(gpd.read_parquet(paths[0]).drop(columns="geometry"))


def _kill_processes_of(home: Path) -> None:
    """SIGKILL every process whose command line names ``home``: the daemon the killed command had
    started (in its own session, so it outlives the command) and that daemon's code server."""
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(home) in part for part in proc.info["cmdline"] or []):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def _hidden_temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.name.endswith(".part") or p.name.startswith(".staging-")]


def test_sigkill_mid_run_then_rerun_gives_the_identical_row(tmp_path: Path) -> None:
    alerts = _alerts(tmp_path)
    clean = tmp_path / "clean"
    _finish(_start(alerts, clean, tmp_path / "home-clean"))

    crashed, home = tmp_path / "crashed", tmp_path / "home-crashed"
    try:
        process = _start(alerts, crashed, home)
        deadline = time.monotonic() + 300
        forward = crashed / "intermediate" / "plume_forward"
        while not (forward.exists() and any(forward.iterdir())):
            assert process.poll() is None, "the run ended before the forward model was stored"
            assert time.monotonic() < deadline, "the forward model was not stored within 300 s"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        daemon_pid = json.loads((home / STATE_FILE).read_text())["pid"]
        os.killpg(daemon_pid, signal.SIGKILL)  # its own session: the code server and the run's process
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        assert [p for p in crashed.rglob("*.parquet") if "posteriors" in p.parts] == []

        # the crashed run held its event's partition slot, STARTED, for max_runtime_seconds (6 h)
        rerun = _finish(_start(alerts, crashed, home))
        assert "marked failed 1 run(s) whose daemon and run process are gone" in rerun, rerun
        with DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(RunsFilter(job_name="attribute_event"))  # newest first
            assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]
    finally:
        _kill_processes_of(home)
    assert _hidden_temporaries(crashed) == []
    pd.testing.assert_frame_equal(_row(crashed), _row(clean))
