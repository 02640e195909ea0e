"""The Helm values' switch-on Job names the code location as the daemon sees it: a sensor's on/off state
is kept per code location, so a sensor started under another location name (``-m module``) is never
run. The Job's shell line writes a workspace file; it is run here and read back."""

from __future__ import annotations

import re
import subprocess

import yaml

from attribution_assets.definitions import defs
from attribution_assets.paths import REPO_ROOT

VALUES = REPO_ROOT / "deploy" / "helm" / "values.yaml"


def test_the_switch_on_job_starts_real_sensors_in_the_deployed_code_location(tmp_path):
    values = yaml.safe_load(VALUES.read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    [job] = [m for m in values["extraManifests"] if m["metadata"]["name"] == "attribution-switch-on"]
    [command] = job["spec"]["template"]["spec"]["containers"][0]["args"]
    steps = command.split(" && ")
    workspace = tmp_path / "workspace.yaml"
    write = steps[0].replace("/tmp/workspace.yaml", str(workspace))
    subprocess.run(["sh", "-c", write], check=True)
    [location] = yaml.safe_load(workspace.read_text())["load_from"]
    assert location["grpc_server"] == {"host": deployment["name"], "port": deployment["port"],
                                       "location_name": deployment["name"]}
    started = [re.fullmatch(r"dagster sensor start (\w+) -w /tmp/workspace.yaml", step) for step in steps[2:]]
    assert all(started), steps[2:]
    names = {match[1] for match in started}
    assert names == {"alert_inbox_sensor", "alert_delivery_sensor"}
    assert names <= {sensor.name for sensor in defs.sensors}
