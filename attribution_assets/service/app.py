"""The FastAPI application of the HTTP alert service (``attribution serve``).

Routes: ``POST /events`` (register an event, answer with the fast posterior, launch the full Dagster
run), ``GET /events/{event_key}`` (the latest posterior and the run's status), ``GET /health``
(readiness), and FastAPI's ``/openapi.json`` and ``/docs``. Errors are ``application/problem+json``
(:mod:`attribution_assets.service.problems`). When a token is set (``ATTRIBUTION_SERVICE_TOKEN``), the
event routes need ``Authorization: Bearer <token>``; ``/health`` and the schema stay open.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import metadata

from dagster import DagsterInstance
from fastapi import Depends, FastAPI, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from attribution_assets.events import AlertFormatError, DetectionEvent, event_from_record
from attribution_assets.paths import archive_root, output_root
from attribution_assets.pipeline import MetDataError, NoObservationsError
from attribution_assets.service.answers import event_answer, row_values
from attribution_assets.service.limits import BodyLimit
from attribution_assets.service.problems import PROBLEM_MEDIA_TYPE, ProblemError, install_problem_handlers
from attribution_assets.service.runtime import ServiceConfig, ServiceRuntime
from attribution_assets.service.schemas import EventAnswer, EventRequest, Health, Problem

TOKEN_ENV = "ATTRIBUTION_SERVICE_TOKEN"
"""Environment variable holding the bearer token; unset or empty: no token needed."""


def _problems(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` entries documenting problem answers."""
    return {status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}} for status in statuses}


_BEARER = HTTPBearer(auto_error=False, description=f"the token in {TOKEN_ENV}, when the service has one")
_CREDENTIALS = Depends(_BEARER)


def bearer_guard(token: str | None) -> Callable[..., None]:
    """A dependency that answers 401 unless the request carries ``Authorization: Bearer <token>``
    (compared in constant time); lets everything through when ``token`` is ``None``."""

    def check(credentials: HTTPAuthorizationCredentials | None = _CREDENTIALS) -> None:
        if token is None:
            return
        if credentials is None:
            raise ProblemError(
                401, "unauthorized", "Unauthorized",
                f"missing bearer token: send 'Authorization: Bearer <token>' with the token in {TOKEN_ENV}",
                {"WWW-Authenticate": 'Bearer realm="attribution"'},
            )
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise ProblemError(
                401, "unauthorized", "Unauthorized", "wrong bearer token",
                {"WWW-Authenticate": 'Bearer realm="attribution", error="invalid_token"'},
            )

    return check


def request_event(body: EventRequest) -> DetectionEvent:
    """The event of a request, validated by the alert-file rules; a 422 problem naming the reason."""
    try:
        return event_from_record(body.model_dump(), "event")
    except AlertFormatError as error:
        raise ProblemError(422, "invalid-event", "Invalid event", str(error)) from error


def _version() -> str:
    try:
        return metadata.version("attribution-assets")
    except metadata.PackageNotFoundError:
        return "0"


def create_app(
    config: ServiceConfig | None = None,
    *,
    instance: DagsterInstance | None = None,
    token: str | None = None,
) -> FastAPI:
    """The service on ``config`` (default: ``$ATTRIBUTION_ARCHIVE`` and ``$ATTRIBUTION_OUTPUT`` with the
    default settings) and ``instance`` (default: ``DagsterInstance.get()`` at start-up, closed at
    shutdown). ``token``: the bearer token (default: ``$ATTRIBUTION_SERVICE_TOKEN``; none when unset)."""
    config = config or ServiceConfig(archive=archive_root(), output=output_root())
    token = token or os.environ.get(TOKEN_ENV) or None
    runtime = ServiceRuntime(config, instance)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)

    app = FastAPI(
        title="attribution_assets alert service",
        version=_version(),
        description=(
            "Satellite methane/CO2 source attribution per detection event: a fast posterior (multi-start "
            "MAP + Laplace) in the answer, the full posterior (NUTS or SMC) from a Dagster run of job "
            "attribute_event. Numbers carry their unit in their name (_kg_h: kg h-1, _m: metres)."
        ),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(BodyLimit)
    install_problem_handlers(app)
    guard = Depends(bearer_guard(token))

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    def health(response: Response) -> Health:
        """Readiness: 200 once the service is warm, 503 while it starts (or when start-up failed)."""
        state = runtime.health(token_required=token is not None)
        if not state.ready:
            response.status_code = 503
        return state

    @app.post(
        "/events", response_model=EventAnswer, status_code=202, dependencies=[guard],
        responses={200: {"model": EventAnswer, "description": "fast answer; the full run was not submitted"},
                   **_problems(401, 404, 422, 503)},
    )
    def post_event(body: EventRequest, response: Response) -> EventAnswer:
        """Register the event, answer with the fast posterior (MAP + Laplace) and launch the full run.

        202: the full run was submitted (``run.run_id``; ``Location`` is the event's URL). 200: the
        fast answer only (``run.error`` says why no run). 404: no instrument observed the event. 422
        (``no-met-data``): the event was observed but no usable met data serves an overpass; the detail
        names the met files tried, rejected or unreadable, with their reasons. Neither registers it.
        """
        event = request_event(body)
        try:
            result, seconds = runtime.fast_answer(event)
        except NoObservationsError as error:
            raise ProblemError(404, "no-observations", "No observations of the event", str(error)) from error
        except MetDataError as error:
            raise ProblemError(422, "no-met-data", "No usable met data for the event", str(error)) from error
        values = row_values(result.row.iloc[0])
        launch = runtime.register_and_launch(event, values, seconds)
        response.headers["Location"] = f"/events/{event.key}"
        if launch.run.run_id is None:
            response.status_code = 200
        return event_answer(values, "fast", launch.status, launch.run, launch.answered_at, round(seconds, 3))

    @app.get(
        "/events/{event_key}", response_model=EventAnswer, dependencies=[guard],
        responses=_problems(401, 404, 422),
    )
    def get_event(event_key: str) -> EventAnswer:
        """The latest posterior of the event (the full run's GeoParquet row once written, else the fast
        answer) with the status of its latest ``attribute_event`` run."""
        try:
            return runtime.latest(event_key)
        except AlertFormatError as error:
            raise ProblemError(422, "invalid-event-key", "Invalid event key", str(error)) from error
        except LookupError as error:
            raise ProblemError(404, "unknown-event", "Unknown event", str(error)) from error

    return app
