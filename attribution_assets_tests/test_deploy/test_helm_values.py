"""The Helm values' one-off Jobs. ``attribution-switch-on`` names the code location as the daemon sees it
(a sensor's on/off state is kept per code location, so a sensor started under another location name,
``-m module``, is never run) and runs after the first install only, so an upgrade leaves a sensor an
operator stopped stopped. ``attribution-pool-limit`` runs after every install and upgrade. Each Job's
shell line is run here: the workspace file it writes is read back, and the pool limit is set in a real
instance."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from dagster import DagsterInstance

from attribution_assets.definitions import defs
from attribution_assets.paths import REPO_ROOT

VALUES = REPO_ROOT / "deploy" / "helm" / "values.yaml"


def _job(name: str) -> tuple[dict, str]:
    """The Job called ``name`` in the values and its container's shell line."""
    values = yaml.safe_load(VALUES.read_text())
    [job] = [m for m in values["extraManifests"] if m["metadata"]["name"] == name]
    [command] = job["spec"]["template"]["spec"]["containers"][0]["args"]
    return job, command


def _hooks(job: dict) -> set[str]:
    return set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))


def test_the_switch_on_job_starts_real_sensors_in_the_deployed_code_location(tmp_path):
    values = yaml.safe_load(VALUES.read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    job, command = _job("attribution-switch-on")
    steps = command.split(" && ")
    workspace = tmp_path / "workspace.yaml"
    write = steps[0].replace("/tmp/workspace.yaml", str(workspace))
    subprocess.run(["sh", "-c", write], check=True)
    [location] = yaml.safe_load(workspace.read_text())["load_from"]
    assert location["grpc_server"] == {"host": deployment["name"], "port": deployment["port"],
                                       "location_name": deployment["name"]}
    started = [re.fullmatch(r"dagster sensor start (\w+) -w /tmp/workspace.yaml", step) for step in steps[1:]]
    assert all(started), steps[1:]
    names = {match[1] for match in started}
    assert names == {"alert_inbox_sensor", "alert_delivery_sensor"}
    assert names <= {sensor.name for sensor in defs.sensors}
    assert _hooks(job) == {"post-install"}, "an upgrade must not start a sensor an operator stopped"


def test_the_pool_limit_job_sets_the_inversion_pool_after_every_install_and_upgrade(tmp_path):
    job, command = _job("attribution-pool-limit")
    assert _hooks(job) == {"post-install", "post-upgrade"}
    graph = defs.resolve_asset_graph()
    [pool] = set().union(*(graph.get(key).pools or set() for key in graph.get_all_asset_keys()))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["sh", "-c", command], check=True, env=env, capture_output=True, timeout=120)
    limit = int(re.search(r"set inversion (\d+)", command)[1])
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.event_log_storage.get_concurrency_info(pool).slot_count == limit
