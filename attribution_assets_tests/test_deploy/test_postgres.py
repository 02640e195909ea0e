"""The production instance template on a real PostgreSQL server: storage, queue limits, monitoring, and
the whole graph for several events run through the daemon with runs and materialisations in PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from attribution_assets.cli import EXIT_OK, main
from attribution_assets.events import read_alerts
from attribution_assets.paths import REPO_ROOT, SAMPLE_ALERTS, SAMPLE_ARCHIVE
from attribution_assets.resources import OutputStore
from attribution_assets_tests.servers import PostgresServer
from attribution_assets_tests.test_deploy.conftest import FAST, PRODUCTION_YAML


def test_the_template_reads_its_credentials_from_the_environment_only() -> None:
    config = yaml.safe_load(PRODUCTION_YAML.read_text())
    database = config["storage"]["postgres"]["postgres_db"]
    assert database.pop("scheme") == "postgresql+psycopg2"
    assert all(set(value) == {"env"} for value in database.values()), database
    assert {value["env"] for value in database.values()} == {
        "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB",
    }


def test_embedded_default_stays_sqlite_with_the_same_limits() -> None:
    embedded = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    production = yaml.safe_load(PRODUCTION_YAML.read_text())
    assert "storage" not in embedded, "the demo must need no database server"
    for section in ("concurrency", "run_monitoring", "run_coordinator"):
        assert embedded[section] == production[section], section


def test_instance_from_the_template_stores_everything_in_postgres(
    pg_home: Path, pg_database: PostgresServer
) -> None:
    with DagsterInstance.get() as instance:
        kinds = {type(s).__name__ for s in (instance.run_storage, instance.event_log_storage,
                                             instance.schedule_storage)}
        assert kinds == {"PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"}
        assert instance.run_monitoring_enabled
        assert instance.event_log_storage.supports_global_concurrency_limits
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs >= 1
        assert any(limit["key"] == "attribution/gas" for limit in queue.tag_concurrency_limits)
    rows = pg_database.query("select tablename from pg_tables where schemaname = 'public'")
    tables = {row[0] for row in rows}
    assert {"runs", "event_logs", "jobs", "concurrency_slots"} <= tables


@pytest.mark.slow
def test_graph_runs_for_several_events_against_postgres(
    tmp_path: Path, pg_home: Path, pg_database: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sample alerts through ``attribution run`` (daemon, queue, one run per event) with the
    instance on PostgreSQL: every event's run succeeded and is a row of PostgreSQL's ``runs`` table,
    every posterior materialisation is in its ``event_logs``, every posterior row exists."""
    output, alerts = tmp_path / "out", tmp_path / "alerts.csv"
    # one CH4 event (EMIT, TROPOMI, GHGSat) and one CO2 event (OCO-2): two runs, both gases
    header, *lines = SAMPLE_ALERTS.read_text().splitlines()
    kept = [line for line in lines if line.startswith(("permian", "belchatow"))]
    alerts.write_text("\n".join([header, *kept]))
    events = read_alerts(alerts)
    assert {event.gas for event in events} == {"CH4", "CO2"}
    argv = ["run", "--archive", str(SAMPLE_ARCHIVE), "--alerts", str(alerts), "--output", str(output)]
    assert main([*argv, *FAST, "--offline"]) == EXIT_OK, capsys.readouterr().out
    keys = {event.key for event in events}
    store = OutputStore(root=str(output))
    for event in events:
        rows = gpd.read_parquet(store.posterior_path(event.iso_week, event.key))
        assert list(rows["event_key"]) == [event.key]
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name="attribute_event"))
        assert {run.tags["dagster/partition"] for run in runs} == keys
        assert {run.status for run in runs} == {DagsterRunStatus.SUCCESS}
        assert {run.tags.get("attribution/gas") for run in runs} == {event.gas for event in events}
        materialised = instance.get_materialized_partitions(AssetKey("event_posterior"))
        assert materialised == keys
    # the same, read straight from PostgreSQL's tables
    stored = pg_database.query("select run_id, status from runs where pipeline_name = 'attribute_event'")
    assert {status for _, status in stored} == {"SUCCESS"} and len(stored) == len(keys)
    posterior_events = pg_database.query(
        "select partition from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION' "
        "and asset_key = %s", ('["event_posterior"]',)
    )
    assert {row[0] for row in posterior_events} == keys
