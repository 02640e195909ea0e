"""The ``attribution_assets`` code location with its steps executed by Celery workers (``dagster-celery``).

Same assets, jobs, sensors, schedules and resources as :mod:`attribution_assets.definitions`; only the
executor differs: each step of a run is a Celery task that any worker on the broker may pick up, so the
events of a backfill spread over the workers of several machines. Load this module instead of
``attribution_assets.definitions`` (``workspace.yaml`` ``module_name``, keeping the location name
``attribution_assets``) and start workers with::

    dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml

Broker and result backend come from the environment of the run processes and the workers
(``ATTRIBUTION_CELERY_BROKER``, ``ATTRIBUTION_CELERY_BACKEND``, e.g. ``redis://host:6379/0``). Workers
need the run processes' other variables too (``DAGSTER_PG_*``, ``ATTRIBUTION_*``), and one
``ATTRIBUTION_JAX_CACHE_DIR`` on shared storage, so that a program compiled by one worker is loaded from
the cache by every other one. Install with ``pip install "attribution-assets[celery,postgres]"``.
"""

from __future__ import annotations

from dagster import Definitions
from dagster_celery import celery_executor

from attribution_assets.definitions import build_defs

BROKER_ENV = "ATTRIBUTION_CELERY_BROKER"
"""Celery broker URL (Redis: ``redis://host:port/db``)."""
BACKEND_ENV = "ATTRIBUTION_CELERY_BACKEND"
"""Celery result backend URL (the same Redis will do)."""

CELERY_EXECUTOR = celery_executor.configured(
    {"broker": {"env": BROKER_ENV}, "backend": {"env": BACKEND_ENV}}, name="attribution_celery_executor"
)


def build_celery_defs() -> Definitions:
    """:func:`~attribution_assets.definitions.build_defs` with :data:`CELERY_EXECUTOR` as the executor."""
    base = build_defs()
    return Definitions(
        assets=base.assets,
        asset_checks=base.asset_checks,
        jobs=base.jobs,
        sensors=base.sensors,
        schedules=base.schedules,
        resources=base.resources,
        executor=CELERY_EXECUTOR,
    )


defs = build_celery_defs()
