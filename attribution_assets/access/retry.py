"""Exponential backoff with full jitter for flaky network calls (Earthdata, CDS)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from attribution_assets.access.http import redact

T = TypeVar("T")

DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)
"""Transient failures worth retrying (``requests`` exceptions derive from ``OSError``)."""


def backoff_delays(attempts: int, base_s: float, max_s: float, seed: int = 0) -> list[float]:
    """The ``attempts - 1`` waits (seconds) between attempts: uniform in [0, min(max_s, base_s 2**k)].

    "Full jitter" from a ``random.Random(seed)``, so a given seed gives the same schedule.
    """
    rng = random.Random(seed)
    return [rng.uniform(0.0, min(max_s, base_s * 2.0**k)) for k in range(max(attempts - 1, 0))]


def with_backoff(
    fn: Callable[[], T],
    attempts: int = 4,
    base_s: float = 2.0,
    max_s: float = 60.0,
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    sleep: Callable[[float], None] = time.sleep,
    log: logging.Logger | Callable[[str], None] | None = None,
    seed: int = 0,
) -> T:
    """Call ``fn()`` up to ``attempts`` times; after a failure of a type in ``retry_on`` wait and retry.

    Waits are exponential with full jitter (see :func:`backoff_delays`; ``base_s`` and ``max_s`` in
    seconds), through the injectable ``sleep`` so tests run instantly. ``log`` is a logger (warning
    level) or a callable taking one message (secrets redacted). Other exceptions (e.g.
    ``http.AccessRefused`` for a refused credential) propagate at once; after the last attempt the last
    exception is re-raised.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    delays = backoff_delays(attempts, base_s, max_s, seed)
    for attempt in range(attempts):
        try:
            return fn()
        except retry_on as error:
            if attempt == attempts - 1:
                raise
            wait = delays[attempt]
            message = redact(
                f"attempt {attempt + 1}/{attempts} failed ({type(error).__name__}: {error}); "
                f"retrying in {wait:.1f} s"
            )
            if isinstance(log, logging.Logger):
                log.warning(message)
            elif log is not None:
                log(message)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
