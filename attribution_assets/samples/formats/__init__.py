"""Writers that turn carrier datasets (docs/carriers.md) into files in the products' native formats.

One module per product: ``emit``, ``tropomi``, ``ghgsat``, ``oco2``, ``era5``. Every writer writes to a
temporary file next to the target and renames it into place, so a failed write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


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
