"""When a failed webhook delivery is due to be resent without a person.

A delivery that failed waits in its week's ledger (:class:`~attribution_assets.alerting.delivery.
DeliveryLedger`, ``OUTPUT/alerts/deliveries/week=YYYY-Www.json``) with the time of its last failure
(``at``) and how many rounds of the same revision failed (``failures``). The alert sensor
re-materialises a week's ``alerts`` once one of its deliveries is due: its failure was retryable (no
response, 5xx or 429) and at least :meth:`RetryBackoff.wait_s` has passed since it. The wait doubles
with every failed round, so a receiver that is down for a day is tried in about ten materialisations,
not at every tick; a permanent refusal (another 4xx) waits for a person (the configuration must change
first), and a webhook no longer configured is never retried, since a materialisation would not send to
it.

No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from attribution_assets.alerting.delivery import DeliveryLedger, LedgerError, retryable_status
from attribution_assets.events import AlertFormatError, parse_iso_week
from attribution_assets.times import parse_time

LEDGER_GLOB = "week=*.json"
RESEND_AFTER_ENV = "ATTRIBUTION_RESEND_AFTER_S"
RESEND_MAX_ENV = "ATTRIBUTION_RESEND_MAX_S"


@dataclass(frozen=True)
class RetryBackoff:
    """Waits between automatic resends of a failed delivery: ``first_s`` (seconds) after the first
    failed round, doubled after each further one, at most ``max_s`` (seconds)."""

    first_s: float = 300.0
    max_s: float = 6 * 3600.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.first_s <= self.max_s:
            raise ValueError(f"resend waits need 0 <= first ({self.first_s} s) <= longest ({self.max_s} s)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RetryBackoff:
        """The waits of ``ATTRIBUTION_RESEND_AFTER_S`` and ``ATTRIBUTION_RESEND_MAX_S`` (seconds; the
        defaults where unset). Raises ``ValueError`` naming the variable that is not a number."""
        values = {}
        for name, variable in (("first_s", RESEND_AFTER_ENV), ("max_s", RESEND_MAX_ENV)):
            text = environ.get(variable, "").strip()
            if text:
                try:
                    values[name] = float(text)
                except ValueError:
                    raise ValueError(f"{variable}={text!r} is not a number of seconds") from None
        return cls(**values)

    def wait_s(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed rounds (1 or more) of the same revision."""
        exponent = min(max(failures, 1) - 1, 40)
        return min(self.first_s * 2.0**exponent, self.max_s)


@dataclass(frozen=True)
class PendingResend:
    """A pending delivery that will be resent: ``week`` (``YYYY-Www``), the webhook's ledger id, the
    event, the failed rounds so far, the time of the last one and when the resend is due (UTC)."""

    week: str
    webhook: str
    event_key: str
    failures: int
    failed_at: datetime
    due_at: datetime


def is_retryable(record: dict[str, Any]) -> bool:
    """Whether a pending record's failure may pass on its own: the record's ``retryable``, or for a
    record written before the ledger kept it, :func:`~attribution_assets.alerting.delivery.retryable_status`
    of its HTTP status."""
    if "retryable" in record:
        return bool(record["retryable"])
    status = record.get("http_status")
    return retryable_status(None if status is None else int(status))


def pending_resends(
    ledger_dir: Path, webhooks: Collection[str], backoff: RetryBackoff = RetryBackoff()
) -> tuple[list[PendingResend], list[str]]:
    """The pending deliveries of every week's ledger in ``ledger_dir`` that will be resent (retryable,
    to one of the webhooks ``webhooks``: ledger ids, :func:`~attribution_assets.alerting.delivery.url_id`),
    each with the time it is due, and the problems met on the way: an unreadable ledger, a ledger whose
    name is not a week, or a pending record without a readable failure time (each a line naming the
    file). Sorted by week and event."""
    found: list[PendingResend] = []
    problems: list[str] = []
    for path in sorted(Path(ledger_dir).glob(LEDGER_GLOB)):
        week = path.stem.removeprefix("week=")
        try:
            parse_iso_week(week)
            pending = DeliveryLedger.load(path).pending()
        except LedgerError as error:  # names the file
            problems.append(str(error))
            continue
        except AlertFormatError as error:
            problems.append(f"{path}: {error}")
            continue
        for webhook, event_key, record in pending:
            if webhook not in webhooks or not is_retryable(record):
                continue
            try:
                failed_at = parse_time(str(record["at"]))
                failures = int(record.get("failures", 1))
            except (KeyError, TypeError, ValueError) as error:
                problems.append(f"{path}: pending delivery of {event_key} to webhook {webhook} has no "
                                f"readable failure time ({type(error).__name__}: {error})")
                continue
            due_at = failed_at + timedelta(seconds=backoff.wait_s(failures))
            found.append(PendingResend(week, webhook, event_key, failures, failed_at, due_at))
    return found, problems
