"""Webhook delivery of alerts: an HTTP client with retries and an idempotency key, and a delivery ledger
that makes a re-materialisation send only what is new or materially changed.

**Transport.** Each alert is POSTed as JSON (:func:`~attribution_assets.alerting.payload.json_body`) with
an ``Idempotency-Key`` header (the payload's ``idempotency_key``). Connection errors, timeouts, 5xx and
429 are retried with exponential backoff and full jitter
(:func:`~attribution_assets.access.retry.backoff_delays`); a 429 or 503 ``Retry-After`` (seconds or an
HTTP date) is waited for instead, up to ``max_retry_after_s``. Other 4xx and 3xx (redirects are not
followed: a POST must not be replayed to another address) are permanent and never retried. Every retry
of a delivery sends the same key, so a receiver that keeps keys processes it once.

**URLs.** Only ``https://`` URLs are accepted, except plain ``http://`` to a loopback host
(``localhost``, 127.0.0.0/8, ``::1``): an alert names facilities and emission rates before they are
public, and a webhook URL often carries its credential in the path or query, so neither may cross a
network in clear text; a loopback address never leaves the machine (a local relay, tests). Logs show a
URL as ``scheme://host[:port]/***`` and pass every message through
:func:`~attribution_assets.access.http.redact` with the URL's path, query and password added.

**Ledger.** ``deliveries.json`` (one per ISO week; written atomically under a file lock) keeps, per
webhook (``sha256`` of the URL, so no secret is stored) and event, the revision last delivered (its
idempotency key and material state) and a pending revision that failed (its exact body, so the next
materialisation retries with the same key). An event that no longer qualifies after it was delivered
gets a ``withdrawn`` delivery. A failed delivery never stops the others. The pending record keeps the
error, whether it may pass on its own (``retryable``), the time of the failure (``at``) and the failed
rounds of that revision (``failures``): :mod:`~attribution_assets.alerting.retries` decides from them
when the alert sensor resends it.

No Dagster import here.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import filelock
import requests

from attribution_assets.access.http import redact, secret_values
from attribution_assets.access.retry import backoff_delays
from attribution_assets.alerting.payload import (
    STATUS_NEW,
    STATUS_UPDATE,
    STATUS_WITHDRAWN,
    ChangeTolerance,
    for_delivery,
    idempotency_key,
    json_body,
    material_changes,
    material_state,
    withdrawal_payload,
)
from attribution_assets.atomic import atomic_path
from attribution_assets.times import iso_z

LEDGER_VERSION = 1
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
SENT, SKIPPED, FAILED = "sent", "skipped", "failed"
Log = Any
"""A logger (``logging.Logger``, Dagster's ``context.log``), a callable taking a message, or ``None``."""


class InsecureWebhookURL(ValueError):
    """A webhook URL that is not ``https://`` (nor ``http://`` to a loopback host); nothing was sent."""


class LedgerError(RuntimeError):
    """The delivery ledger exists but cannot be read."""


class DeliveryFailed(RuntimeError):
    """A delivery that did not succeed: ``http_status`` (``None`` without a response), ``attempts``
    made, ``retryable`` (a later materialisation may succeed) and a redacted message."""

    def __init__(self, message: str, http_status: int | None, attempts: int, retryable: bool) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.attempts = attempts
        self.retryable = retryable


def retryable_status(status: int | None) -> bool:
    """Whether a delivery that got HTTP ``status`` (``None``: no response) may succeed later: no
    response, 5xx or 429; any other status is a refusal that only a configuration change can mend."""
    return status is None or status >= 500 or status == 429


def is_loopback(host: str) -> bool:
    """True for ``localhost`` names and loopback IP addresses (127.0.0.0/8, ``::1``)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str) -> None:
    """Raise :class:`InsecureWebhookURL` unless ``url`` is ``https://`` with a host, or ``http://`` to a
    loopback host (see the module docstring for why)."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if not host:
        raise InsecureWebhookURL(f"webhook URL {display_url(url)!r} has no host")
    if scheme == "https" or (scheme == "http" and is_loopback(host)):
        return
    raise InsecureWebhookURL(
        f"webhook URL {display_url(url)!r}: only https:// URLs (or http:// to a loopback host) are used; "
        "alerts and URL credentials must not travel in clear text"
    )


def display_url(url: str) -> str:
    """``scheme://host[:port]/***``: a URL fit for logs and metadata (path, query and user info hidden)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    hidden = "/***" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be credentials (path, query, user info), longest first."""
    parts = urlsplit(url)
    found = {url, parts.path, parts.query, parts.username or "", parts.password or ""}
    found |= {segment for segment in parts.path.split("/") if len(segment) >= 8}
    return sorted((s for s in found if len(s) >= 4 and s != "/"), key=len, reverse=True)


def url_id(url: str) -> str:
    """The ledger's name for a webhook: 16 hex digits of sha256 of the URL (the URL is not stored)."""
    return hashlib.sha256(url.strip().encode()).hexdigest()[:16]


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent
    or unreadable, never negative."""
    if not value:
        return None
    text = value.strip()
    with suppress(ValueError):
        return max(float(text), 0.0)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _emit(log: Log, message: str, level: int = logging.INFO) -> None:
    """Send ``message`` to a logger (anything with ``info``/``warning``/``error``, such as a Dagster
    ``context.log``) at ``level``, or to a callable taking one message."""
    if log is None:
        return
    method = getattr(log, logging.getLevelName(level).lower(), None)
    if callable(method):
        method(message)
    elif callable(log):
        log(message)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one delivery: ``attempts`` in all, exponential backoff from ``backoff_s`` (seconds,
    full jitter) capped at ``max_backoff_s``; a ``Retry-After`` up to ``max_retry_after_s`` seconds is
    honoured (a longer one ends the delivery for this materialisation); ``timeout_s`` (seconds) bounds
    the connection and the response of each attempt."""

    attempts: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0
    timeout_s: float = 10.0


class WebhookClient:
    """POSTs JSON bodies with an ``Idempotency-Key`` and retries (see the module docstring).

    ``headers``: extra request headers (e.g. ``Authorization``; their values are redacted from logs).
    ``sleep`` waits between attempts (seconds).
    """

    def __init__(
        self,
        policy: RetryPolicy = RetryPolicy(),
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        log: Log = None,
        user_agent: str = "attribution-assets",
    ) -> None:
        if policy.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {policy.attempts}")
        self.policy = policy
        self.headers = {"Content-Type": "application/json", "User-Agent": user_agent, **(headers or {})}
        self.sleep = sleep
        self.log = log
        self._header_secrets = [v for k, v in self.headers.items() if k.lower() == "authorization"]

    def _redact(self, text: str, url: str) -> str:
        secrets = [*url_secrets(url), *self._header_secrets, *secret_values()]
        return redact(text, sorted(set(secrets), key=len, reverse=True))

    def _attempt(self, url: str, body: bytes, key: str) -> tuple[int | None, float | None, str]:
        """One POST: (HTTP status or ``None``, Retry-After seconds, what happened)."""
        try:
            response = requests.post(
                url,
                data=body,
                headers={**self.headers, "Idempotency-Key": key},
                timeout=self.policy.timeout_s,
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            return None, None, f"{type(error).__name__}: {error}"
        with response:
            wait = retry_after_s(response.headers.get("Retry-After"))
            return response.status_code, wait, f"HTTP {response.status_code} {response.reason}"

    def post(self, url: str, body: bytes, key: str) -> int:
        """POST ``body`` to ``url`` until it succeeds; returns the attempts made. Raises
        :class:`DeliveryFailed` (redacted message) after a permanent error or the last attempt."""
        check_webhook_url(url)
        seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)  # jitter differs between alerts
        delays = backoff_delays(self.policy.attempts, self.policy.backoff_s, self.policy.max_backoff_s, seed)
        where = display_url(url)
        for attempt in range(1, self.policy.attempts + 1):
            try:
                status, wait, what = self._attempt(url, body, key)
            except requests.RequestException as error:  # invalid URL, too many headers, ...
                message = self._redact(f"{where}: {type(error).__name__}: {error}", url)
                raise DeliveryFailed(message, None, attempt, retryable=False) from None
            if status is not None and 200 <= status < 300:
                return attempt
            retryable = retryable_status(status)
            message = self._redact(f"{where}: {what} (attempt {attempt}/{self.policy.attempts})", url)
            if not retryable:
                raise DeliveryFailed(message, status, attempt, retryable=False)
            if attempt == self.policy.attempts:
                raise DeliveryFailed(message, status, attempt, retryable=True)
            if wait is not None and wait > self.policy.max_retry_after_s:
                raise DeliveryFailed(f"{message}; the server asked to retry after {wait:.0f} s",
                                     status, attempt, retryable=True)
            pause = wait if wait is not None else delays[attempt - 1]
            _emit(self.log, f"{message}; retrying in {pause:.1f} s", logging.WARNING)
            self.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover


class DeliveryLedger:
    """What was delivered to which webhook (module docstring); ``entries[url_id][event_key]`` holds
    ``sent`` (key, material state, status, time, run id) and ``pending`` (a failed revision)."""

    def __init__(self, path: Path, entries: dict[str, dict[str, dict[str, Any]]] | None = None) -> None:
        self.path = Path(path)
        self.entries = entries or {}

    @classmethod
    def load(cls, path: str | Path) -> DeliveryLedger:
        """The ledger at ``path`` (empty when the file does not exist)."""
        path = Path(path)
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            entries = data["deliveries"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise LedgerError(
                f"{path}: delivery ledger unreadable ({type(error).__name__}: {error}); move it aside to "
                "deliver every alert of the week again (receivers drop repeats by Idempotency-Key)"
            ) from error
        return cls(path, entries)

    def save(self) -> None:
        """Write the ledger atomically (temporary file, then rename)."""
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps({"version": LEDGER_VERSION, "deliveries": self.entries},
                                      indent=1, sort_keys=True))

    def entry(self, webhook: str, event_key: str) -> dict[str, Any]:
        """The (mutable) record of ``event_key`` at webhook ``webhook`` (a :func:`url_id`)."""
        return self.entries.setdefault(webhook, {}).setdefault(event_key, {"sent": None, "pending": None})

    def events(self, webhook: str) -> list[str]:
        """Event keys with a record at ``webhook``."""
        return sorted(self.entries.get(webhook, {}))

    def pending(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every delivery that failed and waits to be resent: ``(webhook, event_key, pending record)``
        (the record's ``error`` and ``failures`` say why and how many times), by webhook and event."""
        return [(webhook, key, entry["pending"]) for webhook in sorted(self.entries)
                for key, entry in sorted(self.entries[webhook].items()) if entry.get("pending")]


@dataclass
class Delivery:
    """The outcome of one alert at one webhook: ``outcome`` is ``sent``, ``skipped`` (already delivered
    and not materially changed) or ``failed``; ``status`` is the payload's (``new``, ``update``,
    ``withdrawn``); ``changes`` the material fields that changed; ``error`` a redacted message."""

    event_key: str
    webhook: str
    outcome: str
    status: str = ""
    idempotency_key: str = ""
    attempts: int = 0
    http_status: int | None = None
    error: str = ""
    changes: list[str] = field(default_factory=list)


def _revision(
    entry: Mapping[str, Any], payload: Mapping[str, Any], state: Mapping[str, Any], tolerance: ChangeTolerance
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(body, material state) to send: the pending revision again (same body and key) when the current
    one is not materially different from it, else a new revision of ``payload``."""
    pending = entry.get("pending")
    if pending and not material_changes(pending["state"], state, tolerance):
        return pending["body"], pending["state"]
    sent = entry.get("sent")
    withdrawn = bool(state.get("withdrawn"))
    status = STATUS_WITHDRAWN if withdrawn else (STATUS_NEW if sent is None else STATUS_UPDATE)
    supersedes = sent["key"] if sent else None
    event_key = str(payload["event_key"])
    key = idempotency_key(event_key, {**state, "supersedes": supersedes} if withdrawn else state)
    return for_delivery(payload, status, key, supersedes), dict(state)


def _deliver_one(
    client: WebhookClient,
    url: str,
    entry: dict[str, Any],
    payload: Mapping[str, Any],
    tolerance: ChangeTolerance,
    run_id: str,
) -> Delivery:
    """Deliver one alert (or withdrawal) to one webhook if it is new or materially changed; updates
    ``entry`` in place."""
    event_key, where = str(payload["event_key"]), display_url(url)
    state = material_state(payload)
    sent = entry.get("sent")
    changes = material_changes(sent["state"] if sent else None, state, tolerance)
    if not changes:
        entry["pending"] = None  # a failed revision that the posterior has since gone back on
        return Delivery(event_key, where, SKIPPED, sent["status"], sent["key"])
    body, state = _revision(entry, payload, state, tolerance)
    key, status = body["idempotency_key"], body["status"]
    try:
        attempts = client.post(url, json_body(body), key)
    except (DeliveryFailed, InsecureWebhookURL) as error:
        failed = isinstance(error, DeliveryFailed)
        pending = entry.get("pending") or {}
        entry["pending"] = {
            "key": key, "state": state, "body": body, "status": status, "error": str(error),
            "http_status": error.http_status if failed else None, "retryable": failed and error.retryable,
            "at": iso_z(datetime.now(UTC)),
            "failures": int(pending.get("failures", 0)) + 1 if pending.get("key") == key else 1,
        }
        _emit(client.log, f"{status} alert {event_key} not delivered: {error}", logging.ERROR)
        return Delivery(event_key, where, FAILED, status, key, error.attempts if failed else 0,
                        error.http_status if failed else None, str(error), changes)
    entry["sent"] = {"key": key, "state": state, "status": status, "at": iso_z(datetime.now(UTC)),
                     "run_id": run_id}
    entry["pending"] = None
    _emit(client.log, f"{status} alert {event_key} delivered to {where} ({attempts} attempt(s))")
    return Delivery(event_key, where, SENT, status, key, attempts, None, "", changes)


def deliver_alerts(
    alerts: Iterable[Mapping[str, Any]],
    retired: Mapping[str, str],
    urls: Iterable[str],
    ledger_path: str | Path,
    client: WebhookClient,
    run_id: str,
    week: str,
    tolerance: ChangeTolerance | None = None,
) -> list[Delivery]:
    """Deliver a week's alerts (payloads of :func:`~attribution_assets.alerting.payload.alert_payload`)
    to every webhook in ``urls``: new and materially changed ones are sent, the rest skipped; an event
    delivered before that is now in ``retired`` (event key -> why it no longer qualifies) or absent gets
    a withdrawal. The ledger at ``ledger_path`` is held under a file lock and saved after every
    delivery. Raises :class:`InsecureWebhookURL` before sending anything when a URL is refused."""
    tolerance = tolerance or ChangeTolerance()
    urls = list(dict.fromkeys(u.strip() for u in urls if u.strip()))
    for url in urls:
        check_webhook_url(url)
    if not urls:
        return []
    current = {str(p["event_key"]): p for p in alerts}
    ledger_path = Path(ledger_path)
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    results: list[Delivery] = []
    with filelock.FileLock(str(ledger_path) + ".lock"):
        ledger = DeliveryLedger.load(ledger_path)
        for url in urls:
            webhook = url_id(url)
            for key in ledger.events(webhook):
                if key not in current and not ledger.entry(webhook, key).get("sent"):
                    # a new alert that failed and no longer qualifies: nothing to send or withdraw
                    ledger.entry(webhook, key)["pending"] = None
            withdrawals = {
                key: withdrawal_payload(key, retired.get(key, "no posterior for the event"), run_id, week)
                for key in ledger.events(webhook)
                if key not in current and (ledger.entry(webhook, key).get("sent") or {}).get("status")
                not in (None, STATUS_WITHDRAWN)
            }
            for event_key, payload in sorted({**current, **withdrawals}.items()):
                results.append(
                    _deliver_one(client, url, ledger.entry(webhook, event_key), payload, tolerance, run_id)
                )
                ledger.save()
    return results


def summarise(deliveries: Iterable[Delivery]) -> dict[str, int]:
    """Counts of ``sent``, ``skipped`` and ``failed`` deliveries."""
    counts = {SENT: 0, SKIPPED: 0, FAILED: 0}
    for delivery in deliveries:
        counts[delivery.outcome] += 1
    return counts
