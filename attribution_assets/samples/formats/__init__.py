"""Writers that turn carrier datasets (docs/carriers.md) into files in the products' native formats.

One module per product: ``emit``, ``tropomi``, ``ghgsat``, ``oco2``, ``era5``. Every writer writes to a
temporary file next to the target and renames it into place, so a failed write leaves nothing behind.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from attribution_assets.atomic import atomic_path

__all__ = ["as_utc", "atomic_path"]


def as_utc(value: datetime | np.datetime64 | str) -> datetime:
    """Return an aware UTC datetime (naive values and numpy datetime64 are taken as UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, np.datetime64):
        micros = int(value.astype("datetime64[us]").astype(np.int64))
        return datetime(1970, 1, 1, tzinfo=UTC) + np.timedelta64(micros, "us").item()
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
