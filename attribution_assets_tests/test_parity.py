"""One event, one answer: the notebook API, a CLI materialisation and a sensor-triggered run give the
same posterior row for the same inputs, settings and seed (the service's answers are checked in
``test_service``)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import arviz as az
import geopandas as gpd
import pandas as pd
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from attribution_assets.alerting.resource import WEBHOOK_URLS_ENV
from attribution_assets.cli import EXIT_OK, main
from attribution_assets.events import DetectionEvent
from attribution_assets.layout import OutputLayout
from attribution_assets.orchestration.daemon import daemon
from attribution_assets.orchestration.submit import RunProgress, submit_run, wait_for_runs
from attribution_assets.orchestration.workspace import code_location, open_workspace
from attribution_assets.paths import REPO_ROOT, SAMPLE_ALERTS, SAMPLE_ARCHIVE
from attribution_assets.pipeline import EventSettings, attribute_event, write_posterior
from attribution_assets.resources import AnalysisSettings
from attribution_assets_tests.test_alerting.helpers import webhook_server

SAMPLER = {"num_chains": 2, "num_warmup": 150, "num_samples": 200, "escalate": False, "seed": 3}
CLI_SAMPLER = ["--chains", "2", "--warmup", "150", "--samples", "200", "--no-escalate", "--seed", "3"]
EVENT_ID = "permian-ch4"


def _row(output: Path, event: DetectionEvent) -> pd.DataFrame:
    return gpd.read_parquet(OutputLayout(str(output)).posterior_path(event.iso_week, event.key))


def _alert_file(path: Path) -> Path:
    lines = SAMPLE_ALERTS.read_text().splitlines()
    path.write_text("\n".join([lines[0], *[line for line in lines if line.startswith(EVENT_ID)]]) + "\n")
    return path


@pytest.fixture()
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh instance (the repository's dagster.yaml) and the environment of a deployment whose
    settings file holds the test's sampler settings."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(SAMPLER))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("ATTRIBUTION_SETTINGS", str(settings))
    monkeypatch.setenv("ATTRIBUTION_ARCHIVE", str(SAMPLE_ARCHIVE))
    monkeypatch.setenv("ATTRIBUTION_OUTPUT", str(tmp_path / "sensor_out"))
    monkeypatch.setenv("ATTRIBUTION_ALERTS_INBOX", str(tmp_path / "inbox"))
    for name in ("EARTHDATA_TOKEN", "EARTHDATA_USERNAME", "EARTHDATA_PASSWORD", "CDSAPI_URL", "CDSAPI_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc or ~/.cdsapirc: live access stays off
    return tmp_path


def _sensor_row(tmp_path: Path, event: DetectionEvent, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """Drop the alert into the inbox, switch the alert sensors on and let the daemon run the event (on
    an instance of its own: the sensor runs events new to its instance); then wait for the event's
    alert at a webhook on 127.0.0.1, which the alert-delivery sensor's roll-up of the week sends."""
    (tmp_path / "inbox").mkdir()
    home = tmp_path / "sensor_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with webhook_server() as hook, DagsterInstance.get() as instance:
        monkeypatch.setenv(WEBHOOK_URLS_ENV, hook.url)  # before the daemon, its code server and runs start
        with daemon(instance), open_workspace(instance) as workspace:
            _sensor_run(instance, workspace, tmp_path, event)
            deadline = time.monotonic() + 300
            while not hook.requests and time.monotonic() < deadline:
                time.sleep(2)
    assert [r.body["event_key"] for r in hook.requests] == [event.key], "the alert followed the posterior"
    assert hook.requests[0].body["status"] == "new"
    return _row(tmp_path / "sensor_out", event)


def _sensor_run(instance: DagsterInstance, workspace, tmp_path: Path, event: DetectionEvent) -> None:
    """Crawl, switch the sensors on, drop the alert file and wait for the event's sensor-requested run."""
    crawl = submit_run(instance, workspace, "crawl_catalog")
    wait_for_runs(instance, [RunProgress(crawl.run_id, "crawl")], timeout_s=300)
    repository = next(iter(code_location(workspace).get_repositories().values()))
    instance.start_sensor(repository.get_sensor("alert_delivery_sensor"))
    instance.start_sensor(repository.get_sensor("alert_inbox_sensor"))
    _alert_file(tmp_path / "inbox" / "alerts.csv")
    deadline = time.monotonic() + 600
    runs = []
    while not runs and time.monotonic() < deadline:
        tags = {"dagster/partition": event.key, "dagster/sensor_name": "alert_inbox_sensor"}
        runs = instance.get_runs(RunsFilter(tags=tags))
        time.sleep(2)
    assert runs, "the sensor requested a run for the new alert"
    [done] = wait_for_runs(instance, [RunProgress(runs[0].run_id, event.key)], timeout_s=900)
    assert done.status == DagsterRunStatus.SUCCESS


@pytest.mark.slow
def test_api_cli_and_sensor_runs_give_the_same_posterior_row(
    deployment: Path, sample_events, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = sample_events[EVENT_ID]
    settings = AnalysisSettings(**SAMPLER).event_settings()
    assert settings.inversion.num_samples == 200 and isinstance(settings, EventSettings)
    write_posterior(attribute_event(event, SAMPLE_ARCHIVE, settings, output=deployment / "api_out"),
                    deployment / "api_out")
    api = _row(deployment / "api_out", event)

    argv = ["run", "--archive", str(SAMPLE_ARCHIVE), "--alerts", str(_alert_file(deployment / "one.csv")),
            "--output", str(deployment / "cli_out"), "--offline", *CLI_SAMPLER]
    assert main(argv) == EXIT_OK
    cli = _row(deployment / "cli_out", event)
    draws = az.from_netcdf(deployment / "cli_out" / "intermediate" / "source_posterior"
                           / f"{event.key}.idata.nc")
    origin = draws.posterior.attrs["local_frame_lon0_deg"], draws.posterior.attrs["local_frame_lat0_deg"]
    assert origin == (event.longitude, event.latitude), "the draws' positions are read in the alert's frame"
    sensor = _sensor_row(deployment, event, monkeypatch)

    assert api["converged"].dtype == bool and len(api) == 1
    pd.testing.assert_frame_equal(cli, api)
    pd.testing.assert_frame_equal(sensor, cli)
    provenance = json.loads(api["provenance"].iloc[0])
    assert provenance["settings"]["inversion"]["seed"] == 3
    assert {item["path"] for item in provenance["inputs"]} and not any(
        item["path"].startswith("/") for item in provenance["inputs"]
    ), "input paths are relative to the archive root"
