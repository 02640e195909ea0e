"""Well-known locations: the bundled data folder and the defaults of the environment variables."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
SAMPLE_ARCHIVE = DATA_DIR / "sample_archive"
SAMPLE_ALERTS = DATA_DIR / "sample_alerts.csv"
REFERENCE_DIR = DATA_DIR / "reference"
SAMPLE_TRUTH = Path(__file__).resolve().parent / "samples" / "truth_table.csv"


def archive_root() -> Path:
    """``ATTRIBUTION_ARCHIVE`` or the bundled sample archive."""
    return Path(os.environ.get("ATTRIBUTION_ARCHIVE") or SAMPLE_ARCHIVE)


def output_root() -> Path:
    """``ATTRIBUTION_OUTPUT`` or ``./attribution_output``."""
    return Path(os.environ.get("ATTRIBUTION_OUTPUT") or Path.cwd() / "attribution_output")


def alert_inbox() -> Path:
    """``ATTRIBUTION_ALERTS_INBOX`` or ``OUTPUT/alerts_inbox``: operator alert files (and the detection
    scans' events) dropped here are registered by the alert sensor."""
    return Path(os.environ.get("ATTRIBUTION_ALERTS_INBOX") or output_root() / "alerts_inbox")
