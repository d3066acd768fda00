"""What a request must pass before anything reads its body: a bearer token for a write, a size under the cap.

FastAPI reads and parses a body before it resolves a route's dependencies, so a token checked by a
dependency is checked only after an anonymous client has made the server read all it sent. The gate is
ASGI middleware and decides from the headers alone:

- a request for one of the ``writes`` (routes matched by path and method) without a valid token is
  answered 401 at once; with one, the actor goes to ``request.state.actor`` for the route;
- a ``Content-Length`` above ``max_body_bytes`` is answered 413 at once;
- a body sent without a length (chunked) is counted as it is read, and reading past the cap ends the
  request with 413: the server never holds more than the cap of any body.

The cap is ``api.max_body_bytes`` unless the route's endpoint declares its own with :func:`body_cap`
(webhook receivers take what their sender sends: GitHub's deliveries run up to 25 MB).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.web.auth import TokenCheck
from conveyor.web.errors import ApiError

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def body_cap(limit: int) -> Callable[[Endpoint], Endpoint]:
    """Give a route its own body cap in bytes, instead of ``api.max_body_bytes``."""

    def mark(endpoint: Endpoint) -> Endpoint:
        endpoint.max_body_bytes = limit  # type: ignore[attr-defined]
        return endpoint

    return mark


def route_caps(routes: Sequence[BaseRoute]) -> list[tuple[BaseRoute, int]]:
    """The routes among ``routes`` whose endpoint declared a cap with :func:`body_cap`."""
    caps = []
    for route in routes:
        limit = getattr(getattr(route, "endpoint", None), "max_body_bytes", None)
        if isinstance(limit, int):
            caps.append((route, limit))
    return caps


class RequestGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: TokenCheck,
        writes: Sequence[BaseRoute],
        max_body_bytes: int,
        caps: Sequence[tuple[BaseRoute, int]] = (),
    ) -> None:
        self.app, self.tokens, self.writes, self.max_body_bytes = app, tokens, tuple(writes), max_body_bytes
        self.caps = tuple(caps)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cap = self._cap(scope)
        try:
            if self._is_write(scope):
                scope.setdefault("state", {})["actor"] = self.tokens.actor(bearer_token(headers))
            self._check_length(headers.get("content-length"), cap)
        except ApiError as refused:
            await refused.response()(scope, receive, send)
            return
        await self.app(scope, self._counting(receive, cap), send)

    def _is_write(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is Match.FULL for route in self.writes)

    def _cap(self, scope: Scope) -> int:
        for route, limit in self.caps:
            if route.matches(scope)[0] is Match.FULL:
                return limit
        return self.max_body_bytes

    def _check_length(self, declared: str | None, cap: int) -> None:
        if declared is not None and declared.strip().isdigit() and int(declared) > cap:
            raise too_large(cap, configured=cap == self.max_body_bytes)

    def _counting(self, receive: Receive, cap: int) -> Receive:
        read = 0

        async def receive_within_cap() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > cap:
                    # raised inside the route's body reading, which hands HTTPException on to the API's
                    # error handlers; the connection is closed with the rest of the body unread
                    raise HTTPException(413, too_large(cap, configured=cap == self.max_body_bytes).message)
            return message

        return receive_within_cap


def bearer_token(headers: Headers) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (the scheme in any case), else None."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def too_large(limit: int, *, configured: bool = True) -> ApiError:
    where = " (api.max_body_bytes)" if configured else " on this endpoint"
    message = f"body: larger than the {limit} bytes this server accepts{where}"
    return ApiError(413, "too_large", message, field="body")
