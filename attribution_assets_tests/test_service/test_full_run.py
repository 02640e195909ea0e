"""``attribution serve --with-daemon`` in its own process: the posted event's full Dagster run (cheap
sampler) finishes, and ``GET /events/{key}`` then returns the run's GeoParquet posterior row."""

from __future__ import annotations

import json
import time
from pathlib import Path

import geopandas as gpd
import httpx
import pandas as pd
import pytest

from attribution_assets.layout import OutputLayout
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.pipeline import attribute_event, write_posterior
from attribution_assets.resources import AnalysisSettings
from attribution_assets_tests.test_service.conftest import assert_row_equals
from attribution_assets_tests.test_service.serving import instance_home, serve_process, wait_healthy
from attribution_assets_tests.test_service.test_api import body

CHEAP = ["--chains", "2", "--warmup", "100", "--samples", "100", "--no-escalate"]
RUN_TIMEOUT_S = 1200.0
"""Longest wait for the full run on a shared 2-core machine, s."""


def _wait_for_run(base: str, key: str, log: Path) -> dict:
    """Poll ``GET /events/{key}`` until the event's run has finished; returns the last answer."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        answer = httpx.get(f"{base}/events/{key}", timeout=60).json()
        if not seen or seen[-1] != (answer["status"], answer["answer"]):
            seen.append((answer["status"], answer["answer"]))
        if answer["status"] in ("done", "failed", "canceled"):
            return answer | {"seen": seen}
        time.sleep(2)
    raise AssertionError(f"run of {key} not finished after {RUN_TIMEOUT_S:.0f} s ({seen}); log:\n"
                         + log.read_text()[-3000:])


@pytest.mark.slow
def test_serve_with_daemon_finishes_the_full_run_and_get_returns_its_row(
    tmp_path: Path, sample_events: dict
) -> None:
    home = instance_home(tmp_path / "dagster_home")
    output = tmp_path / "output"
    log = tmp_path / "serve.log"
    args = ["--archive", str(SAMPLE_ARCHIVE), "--output", str(output), "--with-daemon", *CHEAP, "--offline"]
    # the settings file reaches the fast answers and the full runs; the command line's sampler options win
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"alert_threshold_co2_kg_h": 2.0e6, "num_chains": 3}))
    env = {"ATTRIBUTION_SETTINGS": str(settings_file)}
    with serve_process(args, home, log, env) as (base, process):
        health = wait_healthy(base, process=process)
        assert health["token_required"] is False, "no token in the environment: none required"
        assert {"daemon", "workspace", "catalog", "compile"} <= set(health["steps_s"])

        event = sample_events["belchatow-co2"]
        posted = httpx.post(f"{base}/events", json=body(event), timeout=600)  # no Authorization header
        assert posted.status_code == 202, posted.text
        fast = posted.json()
        assert fast["answer"] == "fast" and fast["status"] == "queued" and "MAP + Laplace" in fast["method"]

        final = _wait_for_run(base, event.key, log)
        assert final["status"] == "done", (final["run"], log.read_text()[-3000:])
        first_status, first_answer = final["seen"][0]  # the daemon may have dequeued it before the first GET
        assert first_answer == "fast" and first_status in {"queued", "running"}, final["seen"]
        assert final["answer"] == "full"
        assert final["run"] == {"run_id": fast["run"]["run_id"], "status": "SUCCESS", "error": None}

        path = OutputLayout(str(output)).posterior_path(event.iso_week, event.key)
        row = gpd.read_parquet(path).iloc[0]
        assert_row_equals(final["row"], row)
        assert final["emission_rate_kg_h"] == row["emission_rate_kg_h"]
        # the CLI's sampler settings reached the full run: 2 chains (NUTS) or 2 populations (SMC)
        assert final["method"] == row["method"]
        assert "NUTS (2 chains x 100" in row["method"] or "in 2 populations" in row["method"]
        inversion = json.loads(row["provenance"])["settings"]["inversion"]
        assert (inversion["num_chains"], inversion["num_warmup"], inversion["num_samples"]) == (2, 100, 100)
        assert inversion["escalate"] is False and inversion["sampler"] == "auto"
        assert json.loads(row["provenance"])["settings"]["alert_threshold_co2_kg_h"] == 2.0e6

        # parity: the notebook API with the same settings and seed gives the service's full row
        settings = AnalysisSettings(num_chains=2, num_warmup=100, num_samples=100, escalate=False,
                                    alert_threshold_co2_kg_h=2.0e6)
        api = attribute_event(event, SAMPLE_ARCHIVE, settings.event_settings(), output=tmp_path / "api")
        write_posterior(api, tmp_path / "api")
        pd.testing.assert_frame_equal(
            gpd.read_parquet(OutputLayout(str(tmp_path / "api")).posterior_path(event.iso_week, event.key)),
            gpd.read_parquet(path),
        )
    assert process.returncode == 0, log.read_text()[-3000:]
