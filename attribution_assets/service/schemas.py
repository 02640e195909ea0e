"""Request and response bodies of the HTTP alert service (pydantic models; they make the OpenAPI schema).

The request is one operator alert in the alert-file format (``event_time`` ISO 8601 UTC, ``latitude``,
``longitude`` in degrees, ``gas``, ``event_id``); it is validated by the same rules as alert files
(:mod:`attribution_assets.events`), not by rules repeated here. Every number in an answer carries its
unit in its name (``_kg_h``: kg h-1, ``_m``: metres) or is a probability in [0, 1].
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Answer = Literal["fast", "full"]
"""``fast``: multi-start MAP + Laplace from the service process; ``full``: the Dagster run's posterior
(NUTS or SMC), the GeoParquet row."""
EventStatus = Literal["queued", "running", "done", "failed", "canceled", "not submitted"]
"""Where the event's full Dagster run is: ``queued`` (waiting for the run queue), ``running``, ``done``
(succeeded), ``failed``, ``canceled``, or ``not submitted`` (no run of the event on the instance)."""


class EventRequest(BaseModel):
    """One detection event (operator alert)."""

    event_time: str = Field(
        description="ISO 8601 time with a time zone (UTC), e.g. 2025-08-14T17:31:00Z",
        examples=["2025-08-14T17:31:00Z"],
    )
    latitude: float = Field(description="degrees north, in [-90, 90]", examples=[31.9095])
    longitude: float = Field(description="degrees east, in [-180, 180]", examples=[-103.61])
    gas: str = Field(default="CH4", description="CH4 or CO2", examples=["CH4"])
    event_id: str | None = Field(
        default=None, description="the operator's label (sanitised, at most 64 characters)",
        examples=["permian-ch4"],
    )


class Facility(BaseModel):
    """The most probable source hypothesis of the attribution: a listed facility, or ``unlisted``."""

    id: str
    name: str
    probability: float | None = Field(description="posterior probability of this hypothesis")


class RunState(BaseModel):
    """The event's latest Dagster run of job ``attribute_event``."""

    run_id: str | None = Field(description="Dagster run id (null when no run could be submitted)")
    status: str = Field(description="Dagster run status, e.g. QUEUED, STARTED, SUCCESS, FAILURE")
    error: str | None = Field(default=None, description="why the run could not be submitted")


class EventAnswer(BaseModel):
    """The posterior of one event: the fast answer, or the full run's GeoParquet row once it exists."""

    event_key: str = Field(description="the Dagster partition key of the event")
    event_id: str | None
    status: EventStatus
    answer: Answer
    method: str = Field(description="how the posterior was computed (e.g. '... MAP + Laplace')")
    emission_rate_kg_h: float | None = Field(description="posterior mean emission rate, kg h-1")
    emission_rate_kg_h_p05: float | None = Field(description="5th percentile, kg h-1")
    emission_rate_kg_h_p95: float | None = Field(description="95th percentile, kg h-1")
    emission_rate_lower_limit_kg_h: float | None = Field(
        default=None, description="lower end of the rate's 90 % confidence interval (Feldman-Cousins), "
        "kg h-1: a non-detection's 90 % interval is [this, upper limit]")
    emission_rate_upper_limit_kg_h: float | None = Field(
        default=None, description="upper end of the rate's 90 % confidence interval (Feldman-Cousins), "
        "kg h-1")
    p_source: float | None = Field(description="posterior probability that a source is present")
    detected: bool
    instruments: list[str] = Field(description="instruments whose observations entered the inversion")
    facility: Facility | None = Field(description="the attributed source; null when no draw has a source")
    alert_score: float | None = Field(description="posterior probability that the rate exceeds the alert "
                                      "threshold")
    run: RunState | None = Field(description="the event's latest full run; null when none was submitted")
    answered_at: str = Field(description="when this posterior was computed or written, ISO 8601 UTC")
    seconds: float | None = Field(
        default=None, description="wall time of the fast answer in this request (queue included), s"
    )
    row: dict[str, Any] = Field(
        description="every column of the posterior row (output schema; the geometry is source_lon/lat); "
        "values rounded as recorded on the instance when the exact fast answer is no longer in memory"
    )


class Health(BaseModel):
    """Readiness of the service: ``ready`` once the code location is loaded, the catalog crawled and
    the inversion compiled."""

    status: Literal["starting", "ready", "failed"]
    ready: bool
    detail: str
    uptime_s: float = Field(description="seconds since the service started")
    ready_after_s: float | None = Field(description="seconds from start to ready")
    steps_s: dict[str, float] = Field(description="seconds each start-up step took")
    archive: str
    output: str
    daemon: bool = Field(description="whether a daemon has heartbeated on the instance within a minute")
    token_required: bool
    inversions: Literal["serialised"] = "serialised"


class Problem(BaseModel):
    """An RFC 9457 problem document (media type ``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
