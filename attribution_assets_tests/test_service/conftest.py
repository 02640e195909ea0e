"""One service for the module's tests: the app under uvicorn on loopback, a private instance (queued run
coordinator, no daemon: submitted runs stay queued), a private output root, a bearer token."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance

from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.service import ServiceConfig, create_app
from attribution_assets_tests.test_service.serving import instance_home, serving, wait_healthy

TOKEN = "service-test-token"


@dataclass
class Service:
    """A running service: its base URL, a client that sends the token, its config and instance."""

    base: str
    client: httpx.Client
    config: ServiceConfig
    instance: DagsterInstance


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("service")
    config = ServiceConfig(archive=SAMPLE_ARCHIVE, output=root / "output", warm_up=False)
    with DagsterInstance.from_config(str(instance_home(root / "dagster_home"))) as instance:
        app = create_app(config, instance=instance, token=TOKEN)
        with serving(app) as base:
            wait_healthy(base)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
                yield Service(base, client, config, instance)


def assert_row_equals(answer_row: dict, row: pd.Series) -> None:
    """Every column of the posterior ``row`` (but the geometry) is in ``answer_row`` with exactly its value:
    floats bit for bit (NaN as null), times as ISO 8601 UTC, texts and booleans as they are."""
    assert set(answer_row) == {str(c) for c in row.index} - {"geometry"}
    for column, value in row.items():
        if column == "geometry":
            continue
        got = answer_row[str(column)]
        if isinstance(value, pd.Timestamp):
            assert got == value.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"), column
        elif isinstance(value, float | np.floating) and math.isnan(value):
            assert got is None, column
        elif isinstance(value, np.generic):
            assert got == value.item() and type(got) is type(value.item()), column
        else:
            assert got == value and type(got) is type(value), column
