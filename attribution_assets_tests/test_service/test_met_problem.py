"""``POST /events`` for an event the archive observed but cannot give met data for, over real HTTP on
loopback: the Korpezhe scenes are there, its ERA5 download lacks ``v10`` and the crawl rejected it. The
answer is a 422 problem naming the rejected file and the variable, and nothing is registered."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance, RunsFilter

from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.service import ServiceConfig, create_app
from attribution_assets_tests.test_bad_inputs.corpus import remove_variable
from attribution_assets_tests.test_service.serving import instance_home, serving, wait_healthy
from attribution_assets_tests.test_service.test_api import assert_problem, body

KORPEZHE_FILES = (
    "ghgsat/GHGSat_L2_GHGSat-C9_20250721T065500Z_korpezhe.h5",
    "tropomi/S5P_OFFL_L2__CH4____20250721T082800_20250721T100854_40509_03_020600_20250722T100854.nc",
    "era5/era5_single_levels_korpezhe-ch4_20250721.nc",
)


@pytest.fixture(scope="module")
def no_wind_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("no_wind")
    archive = root / "archive"
    for name in KORPEZHE_FILES:
        (archive / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_ARCHIVE / name, archive / name)
    era5 = remove_variable(archive / KORPEZHE_FILES[2], "v10")
    config = ServiceConfig(archive=archive, output=root / "output", warm_up=False)
    with (
        DagsterInstance.from_config(str(instance_home(root / "dagster_home"))) as instance,
        serving(create_app(config, instance=instance)) as base,
    ):
        wait_healthy(base)
        with httpx.Client(base_url=base, timeout=600) as client:
            yield {"client": client, "instance": instance, "era5": Path(era5)}


def test_an_event_without_usable_met_data_is_a_422_problem_naming_the_rejected_file(
    no_wind_service: dict, sample_events: dict
) -> None:
    event = sample_events["korpezhe-ch4"]
    response = no_wind_service["client"].post("/events", json=body(event))
    problem = assert_problem(response, 422, "no-met-data")
    detail = problem["detail"]
    assert detail.startswith("no met data covers (54.2150, 38.5020) at 2025-07-21T06:5")
    assert f"the ERA5 file {no_wind_service['era5']} was rejected by the catalog crawl" in detail
    assert "variable 'v10': expected variable present" in detail
    instance = no_wind_service["instance"]
    assert not instance.has_dynamic_partition("detection_events", event.key)
    assert not instance.get_runs(RunsFilter(tags={"dagster/partition": event.key}))
    assert_problem(no_wind_service["client"].get(f"/events/{event.key}"), 404, "unknown-event")
