"""A limit on request bodies, enforced before the body is read, parsed or authenticated.

An event request is a few hundred bytes. Without a limit, any client, a client without the token
included, could make the service read and parse hundreds of megabytes (the bearer check runs after
FastAPI has parsed the body). :class:`BodyLimit` answers 413 (``payload-too-large``) when the declared
``Content-Length`` is over the limit, before reading anything, and stops reading a body sent without
a length (chunked) as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attribution_assets.service.problems import problem_response

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted (bytes): a hundred times an event request."""


class BodyLimit:
    """ASGI middleware: HTTP requests whose body exceeds ``max_bytes`` get a 413 problem document."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, f"{size} bytes")
                return
            if size >= 0:
                await self.app(scope, receive, send)
                return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._refuse(scope, receive, send, f"more than {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        detail = f"the request body is {size}; at most {self.max_bytes} bytes are accepted"
        response = problem_response(Request(scope), 413, "payload-too-large", "Payload too large", detail,
                                    {"Connection": "close"})
        await response(scope, receive, send)
