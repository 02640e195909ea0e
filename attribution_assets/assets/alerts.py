"""The operator alerts of one ISO week, written as files and delivered to webhooks.

Partitioned by ISO week (:data:`attribution_assets.partitions.weekly_partitions`, key = the Monday),
downstream of the week's ``weekly_posteriors``. It reads the week's event rows from the posterior files
(``OUTPUT/posteriors/week=YYYY-Www/*.parquet``); an event whose ``alert_score`` reaches
``min_alert_score`` becomes an alert (:mod:`attribution_assets.alerting.payload`), with the plume mask
and overpass time from the event's ``quantification_baselines`` and ``event_overpasses`` intermediates
(``OUTPUT/intermediate/<asset>/<event_key>.parquet``) where they exist. Outputs in
``OUTPUT/weekly/week=YYYY-Www/``: ``alerts.parquet`` (GeoParquet), ``alerts.geojson``, ``alerts.csv``
(formula-safe). Then the ``notifier`` resource delivers new and materially changed alerts (and
withdrawals) to the webhooks; its ledger is ``OUTPUT/alerts/deliveries/week=YYYY-Www.json``.
"""

from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from dagster import AssetDep, AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from attribution_assets.alerting.delivery import Delivery, summarise
from attribution_assets.alerting.payload import (
    AlertPolicy,
    alert_payload,
    gas_prefix,
    is_alert,
    plume_observation,
)
from attribution_assets.alerting.resource import NotifierResource
from attribution_assets.alerting.tables import write_alerts
from attribution_assets.assets.common import CODE_VERSION, table_metadata
from attribution_assets.catalog.store import read_geoparquet
from attribution_assets.orchestration.config import INTERMEDIATE_DIR
from attribution_assets.partitions import week_of_partition, weekly_partitions
from attribution_assets.resources import OutputStore

_POLICY = AlertPolicy()


class AlertsConfig(Config):
    """Which events of the week become alerts, and when an alert names a facility."""

    min_alert_score: float = Field(
        default=_POLICY.min_alert_score,
        description="an event is an alert when P(rate > the gas's alert threshold) is at least this (0-1)",
    )
    min_facility_probability: float = Field(
        default=_POLICY.min_facility_probability,
        description="the attributed facility is named when its probability is at least this (0-1); "
        "otherwise the alert says 'unlisted'",
    )


def ledger_dir(store: OutputStore) -> Path:
    """The folder of the weeks' delivery ledgers."""
    return store.path / "alerts" / "deliveries"


def ledger_path(store: OutputStore, week: str) -> Path:
    """The delivery ledger of ISO week ``week``."""
    return ledger_dir(store) / f"week={week}.json"


def week_rows(store: OutputStore, week: str) -> list[dict[str, Any]]:
    """The posterior rows of ISO week ``week`` (one file per event), sorted by event time and key."""
    rows = []
    for path in sorted((store.posteriors_dir / f"week={week}").glob("*.parquet")):
        rows += read_geoparquet(path).to_dict("records")
    return sorted(rows, key=lambda r: (pd.Timestamp(r["event_time"]), str(r["event_key"])))


def _intermediate(store: OutputStore, asset_name: str, key: str, context: AssetExecutionContext
                  ) -> gpd.GeoDataFrame | None:
    """An event's stored table of ``asset_name``, or ``None`` when absent or unreadable (logged)."""
    path = store.path / INTERMEDIATE_DIR / asset_name / f"{key}.parquet"
    if not path.exists():
        return None
    try:
        return read_geoparquet(path)
    except (OSError, ValueError) as error:
        context.log.warning(f"{path}: unreadable ({type(error).__name__}: {error}); alert {key} without it")
        return None


def alerts_overview(payloads: list[dict[str, Any]], deliveries: list[Delivery]) -> pd.DataFrame:
    """One line per alert for the UI: rates in kg/h, probabilities, facility, overpass, deliveries."""
    outcome: dict[str, list[str]] = {}
    for delivery in deliveries:
        outcome.setdefault(delivery.event_key, []).append(f"{delivery.outcome} ({delivery.status})")
    lines = []
    for p in payloads:
        prefix = gas_prefix(p["gas"])
        lines.append({
            "event_id": p["event_id"],
            "gas": p["gas"],
            "rate_kg_h": p[f"{prefix}_fluxrate"],
            "rate_sd_kg_h": p[f"{prefix}_fluxrate_std"],
            "rate_p05_kg_h": p[f"{prefix}_fluxrate_p05"],
            "rate_p95_kg_h": p[f"{prefix}_fluxrate_p95"],
            "alert_score": p["alert_score"],
            "p_source": p["p_source"],
            "facility": p["facility_name"],
            "facility_probability": p["facility_probability"],
            "lat_deg": p["lat"],
            "lon_deg": p["lon"],
            "satellite": p["satellite"],
            "tile_date": p["tile_date"],
            "plume_mask": p["plume"] is not None,
            "delivery": ", ".join(outcome.get(p["event_key"], [])) or "-",
        })
    return pd.DataFrame(lines)


@asset(
    partitions_def=weekly_partitions,
    deps=[AssetDep("weekly_posteriors")],
    group_name="outputs",
    kinds={"geoparquet", "geojson", "csv"},
    code_version=CODE_VERSION,
    description="Operator alerts of one ISO week (partition key = the Monday): events whose alert score "
    "(P(rate > the gas's alert threshold)) reaches the threshold, MARS-style fields in kg/h, as "
    "GeoParquet, GeoJSON and formula-safe CSV; new and materially changed alerts are POSTed to the "
    "notifier's webhooks.",
)
def alerts(
    context: AssetExecutionContext, config: AlertsConfig, store: OutputStore, notifier: NotifierResource
) -> MaterializeResult:
    week = week_of_partition(context.partition_key)
    policy = AlertPolicy(config.min_alert_score, config.min_facility_probability)
    payloads: list[dict[str, Any]] = []
    retired: dict[str, str] = {}
    for row in week_rows(store, week):
        key = str(row["event_key"])
        if not is_alert(row, policy):
            retired[key] = f"alert score {float(row.get('alert_score', 0.0)):.3f} < {policy.min_alert_score}"
            continue
        observation = plume_observation(
            row,
            _intermediate(store, "quantification_baselines", key, context),
            _intermediate(store, "event_overpasses", key, context),
        )
        payloads.append(alert_payload(row, context.run.run_id, observation, policy))
    paths = write_alerts(payloads, store.weekly_dir / f"week={week}")
    context.log.info(f"{week}: {len(payloads)} alerts of {len(payloads) + len(retired)} events")
    deliveries = notifier.deliver(payloads, retired, ledger_path(store, week), context.run.run_id, week,
                                  log=context.log)
    counts = summarise(deliveries)
    failures = [{"event_key": d.event_key, "webhook": d.webhook, "error": d.error}
                for d in deliveries if d.outcome == "failed"]
    digits = {"alert_score": 3, "p_source": 3, "facility_probability": 3, "lat_deg": 5, "lon_deg": 5}
    return MaterializeResult(
        metadata={
            "week": week,
            "dagster/row_count": len(payloads),
            "alerts": table_metadata(alerts_overview(payloads, deliveries), digits),
            "deliveries_sent": counts["sent"],
            "deliveries_skipped": counts["skipped"],
            "deliveries_failed": counts["failed"],
            "webhooks": len(notifier.webhook_urls()),
            "delivery_failures": MetadataValue.json(failures),
            **{f"path_{kind}": MetadataValue.path(str(path)) for kind, path in paths.items()},
        }
    )
