"""The ``notifier`` resource: delivers a week's alerts to the configured webhooks
(:mod:`attribution_assets.alerting.delivery`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from attribution_assets.alerting.delivery import (
    Delivery,
    Log,
    RetryPolicy,
    WebhookClient,
    deliver_alerts,
    url_id,
)
from attribution_assets.alerting.payload import ChangeTolerance
from attribution_assets.alerting.retries import RESEND_AFTER_ENV, RESEND_MAX_ENV, RetryBackoff

WEBHOOK_URLS_ENV = "ATTRIBUTION_WEBHOOK_URLS"
"""Environment variable with the webhook URLs (comma-separated) when ``urls`` is not configured."""
WEBHOOK_TOKEN_ENV = "ATTRIBUTION_WEBHOOK_TOKEN"
"""Environment variable whose value, when set, is sent as ``Authorization: Bearer <token>``."""


def parse_urls(text: str | None) -> list[str]:
    """Comma-separated URLs as a list (blanks dropped, order kept, duplicates removed)."""
    return list(dict.fromkeys(part.strip() for part in (text or "").split(",") if part.strip()))


class NotifierResource(ConfigurableResource):
    """POSTs each new or materially changed alert as JSON to every webhook URL, with an
    ``Idempotency-Key`` header, retries and a delivery ledger (see
    :mod:`attribution_assets.alerting.delivery`).

    ``urls``: webhook URLs; ``None`` (default) reads ``ATTRIBUTION_WEBHOOK_URLS`` (comma-separated) when
    the run starts, so URLs that carry a credential stay out of the run config shown in the UI. Only
    ``https://`` URLs, or ``http://`` to a loopback host. ``token_env``: an environment variable whose
    value, when set, is sent as a bearer token. ``timeout_s`` (s): connection and response limit per
    attempt; ``attempts``; ``backoff_s`` / ``max_backoff_s`` (s): first and longest wait of the
    exponential backoff; ``max_retry_after_s`` (s): the longest ``Retry-After`` honoured within a run.
    ``resend_after_s`` / ``max_resend_interval_s`` (s): first and longest wait before the alert sensor
    resends a delivery that failed (:class:`~attribution_assets.alerting.retries.RetryBackoff`); unset,
    ``ATTRIBUTION_RESEND_AFTER_S`` / ``ATTRIBUTION_RESEND_MAX_S`` or 300 s / 6 h. The sensor uses the
    code location's resource, not a run's config, so a deployment sets these through the environment.
    ``rate_rel_tolerance`` (1), ``rate_abs_tolerance_kg_h`` (kg/h) and ``position_tolerance_deg``
    (degrees): what counts as a material change
    (:class:`~attribution_assets.alerting.payload.ChangeTolerance`).
    """

    urls: list[str] | None = Field(
        default=None, description=f"webhook URLs; unset: ${WEBHOOK_URLS_ENV} (comma-separated)"
    )
    token_env: str = Field(default=WEBHOOK_TOKEN_ENV, description="env variable holding a bearer token")
    timeout_s: float = Field(default=10.0, description="seconds per attempt (connection and response)")
    attempts: int = Field(default=4, description="attempts per delivery and materialisation")
    backoff_s: float = Field(default=1.0, description="first backoff wait (s), doubled per attempt")
    max_backoff_s: float = Field(default=30.0, description="longest backoff wait (s)")
    max_retry_after_s: float = Field(default=60.0, description="longest Retry-After honoured (s)")
    resend_after_s: float | None = Field(
        default=None,
        description=f"the alert sensor resends a failed delivery this long (s) after its first failed "
        f"round, doubling the wait after each further one; unset: ${RESEND_AFTER_ENV} or "
        f"{RetryBackoff.first_s:.0f}",
    )
    max_resend_interval_s: float | None = Field(
        default=None,
        description=f"longest wait (s) between automatic resends; unset: ${RESEND_MAX_ENV} or "
        f"{RetryBackoff.max_s:.0f}",
    )
    rate_rel_tolerance: float = Field(default=ChangeTolerance.rate_rel,
                                      description="relative rate change that is material")
    rate_abs_tolerance_kg_h: float = Field(default=ChangeTolerance.rate_abs_kg_h,
                                           description="smallest material rate change (kg/h)")
    position_tolerance_deg: float = Field(default=ChangeTolerance.position_deg,
                                          description="smallest material source move (degrees)")

    def webhook_urls(self) -> list[str]:
        """The configured URLs, or those of ``ATTRIBUTION_WEBHOOK_URLS``."""
        if self.urls is not None:
            return parse_urls(",".join(self.urls))
        return parse_urls(os.environ.get(WEBHOOK_URLS_ENV))

    def tolerance(self) -> ChangeTolerance:
        """What counts as a material change (kg/h, degrees)."""
        return ChangeTolerance(
            self.rate_rel_tolerance, self.rate_abs_tolerance_kg_h, self.position_tolerance_deg
        )

    def webhook_ids(self) -> set[str]:
        """The ledger ids (:func:`~attribution_assets.alerting.delivery.url_id`) of the configured URLs."""
        return {url_id(url) for url in self.webhook_urls()}

    def resend_backoff(self) -> RetryBackoff:
        """When the alert sensor resends a failed delivery (seconds): the configured waits, else those
        of the environment (:meth:`~attribution_assets.alerting.retries.RetryBackoff.from_env`)."""
        from_env = RetryBackoff.from_env(os.environ)
        return RetryBackoff(
            from_env.first_s if self.resend_after_s is None else self.resend_after_s,
            from_env.max_s if self.max_resend_interval_s is None else self.max_resend_interval_s,
        )

    def client(self, log: Log = None) -> WebhookClient:
        """The HTTP client with this resource's retry policy and bearer token."""
        policy = RetryPolicy(self.attempts, self.backoff_s, self.max_backoff_s, self.max_retry_after_s,
                             self.timeout_s)
        token = os.environ.get(self.token_env, "") if self.token_env else ""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return WebhookClient(policy, headers, log=log,
                             user_agent=f"attribution-assets/{version('attribution-assets')}")

    def deliver(
        self,
        alerts: Iterable[Mapping[str, Any]],
        retired: Mapping[str, str],
        ledger_path: str | Path,
        run_id: str,
        week: str,
        log: Log = None,
    ) -> list[Delivery]:
        """Deliver a week's alerts (:func:`~attribution_assets.alerting.delivery.deliver_alerts`);
        nothing is sent (and an empty list returned) when no webhook is configured."""
        return deliver_alerts(alerts, retired, self.webhook_urls(), ledger_path, self.client(log), run_id,
                              week, self.tolerance())
