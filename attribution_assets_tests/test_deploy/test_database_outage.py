"""The production instance's database out of reach, on a real PostgreSQL server: the service answers
503 with ``Retry-After`` (a load balancer takes it out of rotation) instead of 500, and a command
that cannot reach the database says so in one line naming where it looked, instead of a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance

from attribution_assets.cli import EXIT_FAILED, main
from attribution_assets.paths import SAMPLE_ALERTS, SAMPLE_ARCHIVE
from attribution_assets.service import ServiceConfig, create_app
from attribution_assets.service.problems import RETRY_AFTER_S
from attribution_assets_tests.servers import PostgresServer, free_port
from attribution_assets_tests.test_deploy.conftest import PRODUCTION_YAML
from attribution_assets_tests.test_service.serving import serving, wait_healthy

PROBLEM = "application/problem+json"


def _refuse_connections(server: PostgresServer, database: str, allow: bool) -> None:
    """Let ``database`` take connections or not; refusing also ends its open ones."""
    server.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allow).lower()}')
    if not allow:
        server.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (database,))


def test_the_service_answers_503_while_the_instance_database_is_out_of_reach(
    tmp_path: Path, pg_home: Path, postgres: PostgresServer, pg_database: PostgresServer
) -> None:
    config = ServiceConfig(archive=SAMPLE_ARCHIVE, output=tmp_path / "output", warm_up=False)
    with DagsterInstance.get() as instance, serving(create_app(config, instance=instance)) as base:
        wait_healthy(base)
        _refuse_connections(postgres, pg_database.database, allow=False)
        try:
            answers = {
                "health": httpx.get(f"{base}/health", timeout=120),
                "get": httpx.get(f"{base}/events/CH4_20250814T173100Z_31.9095N_103.6100W", timeout=120),
            }
        finally:
            _refuse_connections(postgres, pg_database.database, allow=True)
        for name, response in answers.items():
            assert response.status_code == 503, (name, response.text)
            assert response.headers["content-type"] == PROBLEM
            assert response.headers["retry-after"] == str(RETRY_AFTER_S)
            problem = response.json()
            assert problem["type"].endswith(":instance-unavailable"), name
            assert "database cannot be reached" in problem["detail"]
        assert httpx.get(f"{base}/health", timeout=60).status_code == 200  # back once the database is


def test_a_command_names_the_database_it_cannot_reach_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PRODUCTION_YAML, home / "dagster.yaml")
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port),
                        "DAGSTER_PG_USERNAME": "nobody", "DAGSTER_PG_PASSWORD": "x",
                        "DAGSTER_PG_DB": "dagster"}.items():
        monkeypatch.setenv(name, value)
    argv = ["run", "--archive", str(SAMPLE_ARCHIVE), "--alerts", str(SAMPLE_ALERTS),
            "--output", str(tmp_path / "out"), "--offline"]
    assert main(argv) == EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    expected = f"attribution: the instance database of {home / 'dagster.yaml'} cannot be reached"
    assert err[-1].startswith(expected)
    assert f"DAGSTER_PG_HOST=127.0.0.1, DAGSTER_PG_PORT={port}, DAGSTER_PG_DB=dagster" in err[-1]
    assert not any(line.startswith("Traceback") for line in err)
