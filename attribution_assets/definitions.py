"""The ``attribution_assets`` code location.

Loading it configures JAX for the run processes (:func:`~attribution_assets.compilation.configure_jax`:
the XLA CPU flag and the persistent compilation cache) before any asset computes, and makes a run
termination that Python swallowed in a garbage-collector callback arrive again
(:func:`~attribution_assets.stop_requests.redeliver_swallowed_stops`).
"""

from __future__ import annotations

from dagster import DagsterExecutionInterruptedError, Definitions, in_process_executor

from attribution_assets.stop_requests import redeliver_swallowed_stops

# first, before anything imports JAX (the event steps do), whose gc callback can swallow a stop: a
# process told to stop while that callback runs would otherwise miss it
redeliver_swallowed_stops(DagsterExecutionInterruptedError)

from attribution_assets.assets.alerts import alerts
from attribution_assets.assets.aoi import emit_aoi, ghgsat_aoi, oco2_aoi, tropomi_aoi
from attribution_assets.assets.attribution import source_attribution
from attribution_assets.assets.baselines import quantification_baselines
from attribution_assets.assets.catalog import event_overpasses, overpass_catalog
from attribution_assets.assets.detections import detections
from attribution_assets.assets.enhancement import emit_enhancement
from attribution_assets.assets.forward import plume_forward
from attribution_assets.assets.inversion import source_posterior
from attribution_assets.assets.met import met_conditions
from attribution_assets.assets.posterior import event_posterior
from attribution_assets.assets.weekly import weekly_posteriors
from attribution_assets.checks import ALL_CHECKS
from attribution_assets.compilation import configure_jax
from attribution_assets.delivery_sensor import alert_delivery_sensor
from attribution_assets.jobs import (
    attribute_event_job,
    backfill_week_job,
    catalog_job,
    detection_job,
    rollup_job,
)
from attribution_assets.overpass_sensor import new_overpass_sensor
from attribution_assets.resources import default_resources
from attribution_assets.sensors import alert_inbox_sensor, weekly_rollup_schedule

configure_jax()

ASSETS = [
    overpass_catalog,
    event_overpasses,
    emit_aoi,
    tropomi_aoi,
    ghgsat_aoi,
    oco2_aoi,
    emit_enhancement,
    met_conditions,
    plume_forward,
    quantification_baselines,
    source_posterior,
    source_attribution,
    event_posterior,
    weekly_posteriors,
    alerts,
    detections,
]


def build_defs(resources: dict[str, object] | None = None) -> Definitions:
    """The code location with ``resources`` (default: from ATTRIBUTION_ARCHIVE / ATTRIBUTION_OUTPUT).

    Steps run in one process per run (in-process executor): JAX compiles the forward model and the
    sampler once per run rather than once per step.
    """
    return Definitions(
        assets=ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[catalog_job, attribute_event_job, rollup_job, detection_job, backfill_week_job],
        sensors=[alert_inbox_sensor, new_overpass_sensor, alert_delivery_sensor],
        schedules=[weekly_rollup_schedule],
        resources=resources if resources is not None else default_resources(),
        executor=in_process_executor,
    )


defs = build_defs()
