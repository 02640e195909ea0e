"""Fixtures of the deployment tests: a throwaway PostgreSQL server and Redis server on loopback, and a
Dagster instance home configured from the production template ``deploy/dagster.yaml``."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from attribution_assets.paths import REPO_ROOT
from attribution_assets_tests.servers import (
    PostgresServer,
    RedisServer,
    postgres_bin_dir,
    postgres_server,
    redis_binary,
    redis_server,
)

PRODUCTION_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
"""The production instance template: PostgreSQL storage, queue limits, pools, run monitoring."""
FAST_SETTINGS = {"num_chains": 2, "num_warmup": 150, "num_samples": 150, "escalate": False}
"""A cheap sampler for graph runs, as ``settings`` resource fields. 2 x (100 + 100) left the Permian
sample's R-hat at 1.110 with the flux factor at 0.2, over the 1.1 its convergence check allows for
short chains, and failed the run; 2 x (150 + 150) gives 1.03 at about the same cost."""
FAST = ["--chains", str(FAST_SETTINGS["num_chains"]), "--warmup", str(FAST_SETTINGS["num_warmup"]),
        "--samples", str(FAST_SETTINGS["num_samples"]), "--no-escalate"]
"""The same sampler as command-line flags."""


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for this test session (skipped only when it is not installed)."""
    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL's server (initdb, pg_ctl) is not installed: apt-get install postgresql")
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    """A Redis server on 127.0.0.1 for this test session (skipped only when it is not installed)."""
    if redis_binary() is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    with redis_server() as server:
        yield server


@pytest.fixture()
def pg_database(postgres: PostgresServer) -> PostgresServer:
    """A new, empty database on the session's server, so each test's instance starts empty."""
    return postgres.create_database(f"dagster_{secrets.token_hex(4)}")


@pytest.fixture()
def pg_home(tmp_path: Path, pg_database: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``DAGSTER_HOME`` holding ``deploy/dagster.yaml`` verbatim, its PostgreSQL credentials in the
    environment (``DAGSTER_PG_*``); returns the home folder."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PRODUCTION_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in pg_database.env().items():
        monkeypatch.setenv(name, value)
    return home
