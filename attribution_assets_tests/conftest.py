"""Shared set-up: the XLA option, the order in which modules run, the bundled sample archive and
alerts, and fast sampler settings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from attribution_assets.compilation import set_xla_flags
from attribution_assets.events import read_alerts
from attribution_assets.paths import SAMPLE_ALERTS, SAMPLE_ARCHIVE, SAMPLE_TRUTH

FAST_SAMPLER = {"num_chains": 2, "num_warmup": 300, "num_samples": 300, "escalate": False}


def pytest_configure(config: pytest.Config) -> None:
    """The XLA CPU option of the entry points, set before any test computes with JAX."""
    set_xla_flags()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the modules that hold slow tests first, each module's tests in their own order.

    The README's test command runs two workers (``-n 2``) that take whole modules (``--dist
    loadfile``, so a module's fixtures are built once) in this order: the long end-to-end modules
    start at once and the short ones fill in after them, instead of one worker finishing the last
    long module alone while the other idles.
    """
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_modules)


@pytest.fixture(scope="session")
def sample_events():
    """The bundled operator alerts, keyed by event id."""
    return {event.event_id: event for event in read_alerts(SAMPLE_ALERTS)}


@pytest.fixture(scope="session")
def sample_truth() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_TRUTH).set_index("event_id")


@pytest.fixture(scope="session")
def sample_archive() -> Path:
    return SAMPLE_ARCHIVE
