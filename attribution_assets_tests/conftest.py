"""Shared fixtures: the bundled sample archive, fast sampler settings, a materialised sample run."""

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
