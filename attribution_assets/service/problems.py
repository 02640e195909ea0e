"""Errors as ``application/problem+json`` (RFC 9457): ``type``, ``title``, ``status``, ``detail`` and
``instance`` (the request path), for every error the service answers, FastAPI's own included.

A route raises :class:`ProblemError`; :func:`install_problem_handlers` turns it, request validation
errors, HTTP errors (unknown route, wrong method) and unexpected exceptions into problem responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from attribution_assets.orchestration.failures import instance_database_unreachable

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:attribution-assets:problem:"
"""Problem types are URNs: ``urn:attribution-assets:problem:<slug>``."""


def problem_type(slug: str) -> str:
    """The ``type`` URI of problem ``slug`` (e.g. ``invalid-event``)."""
    return TYPE_PREFIX + slug


class ProblemError(Exception):
    """An error answered as a problem document with ``status`` (HTTP), ``slug`` (the type's last part),
    ``title`` (short, the same for every occurrence of the type) and ``detail`` (this occurrence's reason);
    ``headers`` go on the response (e.g. ``WWW-Authenticate``, ``Retry-After``)."""

    def __init__(
        self, status: int, slug: str, title: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})


class ProblemResponse(JSONResponse):
    """A JSON response with the ``application/problem+json`` media type."""

    media_type = PROBLEM_MEDIA_TYPE


def problem_response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    """The problem document of one error, with ``instance`` = the request path."""
    body = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def validation_detail(error: RequestValidationError) -> str:
    """A one-line reason from FastAPI's validation errors: ``field: message`` joined by ``; ``."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        parts.append(f"{location}: {item.get('msg', 'invalid')}" if location else str(item.get("msg")))
    return "; ".join(parts) or "invalid request"


def _slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-")
    except ValueError:
        return "http-error"


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


RETRY_AFTER_S = 30
"""``Retry-After`` (seconds) of a 503 answered while the instance database is unreachable."""


def install_problem_handlers(app: FastAPI) -> None:
    """Answer :class:`ProblemError`, request validation errors (422), HTTP errors, an unreachable
    instance database (503 with ``Retry-After``, so a load balancer takes the service out of rotation)
    and unexpected exceptions (500; the server logs the traceback, the detail does not repeat the
    exception) as problems."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, error: ProblemError) -> ProblemResponse:
        return problem_response(request, error.status, error.slug, error.title, error.detail, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> ProblemResponse:
        return problem_response(request, 422, "invalid-request", "Invalid request", validation_detail(error))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> ProblemResponse:
        detail = error.detail if isinstance(error.detail, str) else _title(error.status_code)
        return problem_response(
            request, error.status_code, _slug(error.status_code), _title(error.status_code), detail,
            error.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> ProblemResponse:
        if instance_database_unreachable(error):
            return problem_response(
                request, 503, "instance-unavailable", "Instance database unavailable",
                f"the Dagster instance's database cannot be reached ({type(error).__name__}); the "
                "request can be sent again once it is back", {"Retry-After": str(RETRY_AFTER_S)},
            )
        return problem_response(
            request, 500, "internal-error", "Internal error",
            f"{type(error).__name__} while answering the request; the service log has the traceback",
        )
