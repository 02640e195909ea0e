"""Whether a live data service is used: an explicit switch, or "on when credentials are found"."""

from __future__ import annotations

from dataclasses import dataclass


class CredentialsError(RuntimeError):
    """Live access was switched on but the service's credentials are missing."""


@dataclass(frozen=True)
class LiveDecision:
    """The outcome for one service: ``on`` and a one-line ``reason`` for the run log and metadata."""

    service: str
    on: bool
    reason: str

    def __str__(self) -> str:
        return f"{self.service}: {'on' if self.on else 'off'} ({self.reason})"


def decide_live(service: str, live: bool | None, credentials: str | None, how_to: str) -> LiveDecision:
    """Decide whether ``service`` is used.

    ``live`` is the configured switch (``None``: on exactly when credentials are found);
    ``credentials`` names where they were found (e.g. ``"environment"``, ``"netrc"``) or is ``None``;
    ``how_to`` says how to provide them. ``live=True`` without credentials raises
    :class:`CredentialsError`, because the operator asked for downloads that cannot happen.
    """
    if live is False:
        return LiveDecision(service, False, "live=False")
    if credentials is None:
        if live:
            raise CredentialsError(f"{service}: live=True but no credentials found; {how_to}")
        return LiveDecision(service, False, f"no credentials found; {how_to}")
    return LiveDecision(service, True, f"credentials from {credentials}")
