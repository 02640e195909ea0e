"""The week-partitioned ``alerts`` asset, materialised through Dagster: GeoParquet, GeoJSON and CSV of
the week's alerts, and deliveries to a webhook on 127.0.0.1 (no duplicate on a re-run, an update when a
posterior changes)."""

from __future__ import annotations

import csv
import json

import geopandas as gpd
import pytest
import shapely
from dagster import AssetKey, DagsterInstance, instance_for_test, materialize

from attribution_assets.alerting.resource import WEBHOOK_URLS_ENV, NotifierResource
from attribution_assets.assets.alerts import alerts
from attribution_assets.events import DetectionEvent
from attribution_assets.partitions import weekly_partitions
from attribution_assets.resources import OutputStore
from attribution_assets_tests.test_alerting.helpers import (
    PERMIAN,
    PLUME,
    WEEK,
    WEEK_PARTITION,
    belchatow_row,
    emit_baselines,
    overpasses,
    permian_row,
    webhook_server,
    write_event,
)

QUIET = DetectionEvent(PERMIAN.time.replace(hour=9), -103.5, 31.8, "CH4")
FORMULA = '=HYPERLINK("http://x.example","open")'
"""Text a spreadsheet would run (event ids are sanitised on the way in; the CSV must not rely on it)."""


def _materialise(instance: DagsterInstance, root, url: str, config: dict | None = None):
    resources = {
        "store": OutputStore(root=str(root)),
        "notifier": NotifierResource(urls=[url], attempts=2, backoff_s=0.01),
    }
    run_config = {"ops": {"alerts": {"config": config}}} if config else None
    result = materialize([alerts], partition_key=WEEK_PARTITION, resources=resources, instance=instance,
                         run_config=run_config)
    assert result.success
    [event] = result.get_asset_materialization_events()
    return result, event.materialization.metadata


@pytest.fixture
def week_root(tmp_path):
    """A week with a CH4 alert (plume mask), a CO2 alert (no mask) and a CH4 event below the threshold
    whose operator id is a spreadsheet formula."""
    write_event(tmp_path, permian_row(), emit_baselines(), overpasses())
    write_event(tmp_path, belchatow_row())
    crafted = permian_row(event=QUIET, score=0.95)
    crafted["instruments"], crafted["event_id"] = "-EMIT", FORMULA
    write_event(tmp_path, crafted)
    return tmp_path


def test_asset_definition():
    assert alerts.partitions_def == weekly_partitions
    assert AssetKey("weekly_posteriors") in alerts.dependency_keys
    spec = alerts.specs_by_key[AssetKey("alerts")]
    assert spec.kinds == {"geoparquet", "geojson", "csv"}
    assert spec.code_version is not None


@pytest.mark.slow
def test_materialised_week_writes_files_and_calls_the_webhook(week_root):
    with webhook_server() as hook, instance_for_test() as instance:
        result, metadata = _materialise(instance, week_root, hook.url)
        assert metadata["dagster/row_count"].value == 3
        assert metadata["deliveries_sent"].value == 3 and metadata["deliveries_failed"].value == 0
        table = metadata["alerts"].value
        assert {c.name for c in table.schema.columns} >= {"rate_kg_h", "rate_p05_kg_h", "rate_p95_kg_h"}
        assert len(table.records) == 3
        week_dir = week_root / "weekly" / f"week={WEEK}"
        parquet = gpd.read_parquet(week_dir / "alerts.parquet")
        assert len(parquet) == 3 and set(parquet["gas"]) == {"CH4", "CO2"}
        permian = parquet[parquet["event_id"] == "permian-ch4"].iloc[0]
        assert permian["plume"].equals(PLUME) and permian.geometry.equals(shapely.Point(-103.6112, 31.908))
        assert permian["ch4_fluxrate"] == 6000.0 and permian["run_id"] == result.run_id
        features = json.loads((week_dir / "alerts.geojson").read_text())["features"]
        assert {f["properties"]["event_id"] for f in features} == set(parquet["event_id"])
        rows = {r["event_key"]: r for r in csv.DictReader((week_dir / "alerts.csv").open(newline=""))}
        crafted = rows[QUIET.key]
        assert crafted["event_id"] == "'" + FORMULA and crafted["instruments"] == "'-EMIT"
        assert shapely.from_wkt(rows[PERMIAN.key]["plume"]).equals(PLUME)
        assert {r.body["event_key"] for r in hook.requests} == set(rows)
        assert all(r.headers["Idempotency-Key"] == r.body["idempotency_key"] for r in hook.requests)

        # a re-run sends nothing
        _, metadata = _materialise(instance, week_root, hook.url)
        assert metadata["deliveries_skipped"].value == 3 and metadata["deliveries_sent"].value == 0
        assert len(hook.requests) == 3

        # a changed posterior sends an update; one within rounding does not
        write_event(week_root, permian_row(rate_kg_h=6010.0))
        _, metadata = _materialise(instance, week_root, hook.url)
        assert metadata["deliveries_sent"].value == 0 and len(hook.requests) == 3
        write_event(week_root, permian_row(rate_kg_h=9000.0))
        _, metadata = _materialise(instance, week_root, hook.url)
        assert metadata["deliveries_sent"].value == 1 and metadata["deliveries_skipped"].value == 2
        update = hook.requests[-1].body
        assert update["status"] == "update" and update["ch4_fluxrate"] == 9000.0

        # a stricter alert threshold withdraws the alerts below it
        _, metadata = _materialise(instance, week_root, hook.url, {"min_alert_score": 0.97})
        assert metadata["dagster/row_count"].value == 2
        assert [r.body["status"] for r in hook.requests[4:]] == ["withdrawn"]
        assert hook.requests[-1].body["event_key"] == QUIET.key


@pytest.mark.slow
def test_failed_delivery_does_not_fail_the_asset(week_root):
    with webhook_server() as hook, instance_for_test() as instance:
        hook.default = 503
        _, metadata = _materialise(instance, week_root, hook.url)
        assert metadata["deliveries_failed"].value == 3 and metadata["dagster/row_count"].value == 3
        assert len(metadata["delivery_failures"].value) == 3
        hook.default = 200
        _, metadata = _materialise(instance, week_root, hook.url)
        assert metadata["deliveries_sent"].value == 3


def test_empty_week_writes_empty_files(tmp_path):
    with webhook_server() as hook, instance_for_test() as instance:
        _, metadata = _materialise(instance, tmp_path, hook.url)
    assert metadata["dagster/row_count"].value == 0 and hook.requests == []
    week_dir = tmp_path / "weekly" / f"week={WEEK}"
    assert json.loads((week_dir / "alerts.geojson").read_text())["features"] == []
    assert len(gpd.read_parquet(week_dir / "alerts.parquet")) == 0


def test_webhook_urls_from_the_environment(monkeypatch):
    urls = " https://a.example.org/x , http://127.0.0.1:9/y,,https://a.example.org/x"
    monkeypatch.setenv(WEBHOOK_URLS_ENV, urls)
    assert NotifierResource().webhook_urls() == ["https://a.example.org/x", "http://127.0.0.1:9/y"]
    assert NotifierResource(urls=["https://b.example.org/z"]).webhook_urls() == ["https://b.example.org/z"]
    monkeypatch.delenv(WEBHOOK_URLS_ENV)
    assert NotifierResource().webhook_urls() == []

