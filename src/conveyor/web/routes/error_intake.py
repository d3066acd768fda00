"""Where Sentry SDKs send errors: ``POST /api/{project_id}/envelope/`` and ``POST /api/{project_id}/store/``.

Authenticated by the project's key, as Sentry's own intake does (``X-Sentry-Auth: Sentry sentry_key=KEY,
...`` or ``?sentry_key=KEY``), never by an API token. :class:`~conveyor.error_intake.intake.Intake` decides
every answer. :class:`IntakeFastPath`, ASGI middleware in front of the app, serves these two paths without
the framework's routing (thousands of requests a second); the FastAPI routes here describe them in the
OpenAPI document and answer the same way when the app runs without the fast path.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.error_intake.intake import Answer, Intake, refused
from conveyor.web.errors import error_responses, from_exception
from conveyor.web.gate import body_cap

log = logging.getLogger(__name__)
ROUTE = re.compile(r"^/api/([1-9][0-9]{0,9})/(envelope|store)/$")
MAX_PROJECT_ID = 2**31 - 1
ProjectId = Annotated[int, Path(ge=1, le=MAX_PROJECT_ID, description="The project id of the DSN (`conveyor dsn`).")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Stored (or accepted and dropped: transactions, sessions, attachments, ...)",
        "content": {"application/json": {"schema": {"type": "object", "properties": {"id": {"type": "string"}}}}},
    },
    **error_responses(400, 401, 403, 413, 422, 429, 503),
}
BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-sentry-envelope": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


def router_for(intake: Intake) -> APIRouter:
    """The intake's documented routes; their body cap is ``errors.max_body_bytes``."""
    router = APIRouter(tags=["error intake"], responses=RESPONSES)

    async def receive(request: Request, project_id: int, *, envelope: bool) -> JSONResponse:
        headers = {name.lower(): value for name, value in request.headers.items()}
        project = intake.authorise(project_id, headers, dict(request.query_params))
        if isinstance(project, Answer):
            return _json(project)
        body = await request.body()
        return _json(await intake.receive(project, body, headers.get("content-encoding"), envelope=envelope))

    @router.post("/api/{project_id}/envelope/", openapi_extra=BODY, response_class=JSONResponse)
    @body_cap(intake.config.errors.max_body_bytes)
    async def envelope(request: Request, project_id: ProjectId) -> JSONResponse:
        """An envelope as Sentry SDKs send it: its error events are stored and grouped into issues; its
        other items (transactions, sessions, attachments, client reports, ...) are accepted and dropped."""
        return await receive(request, project_id, envelope=True)

    @router.post("/api/{project_id}/store/", openapi_extra=BODY, response_class=JSONResponse)
    @body_cap(intake.config.errors.max_body_bytes)
    async def store(request: Request, project_id: ProjectId) -> JSONResponse:
        """One event as JSON (the intake of older SDKs)."""
        return await receive(request, project_id, envelope=False)

    return router


def _json(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status, headers=dict(answer.headers))


class IntakeFastPath:
    """ASGI middleware answering ``POST /api/{project_id}/envelope/`` and ``.../store/`` before the web
    framework sees them: a Sentry SDK's requests cost one regex match instead of route matching,
    dependency resolution and the error middleware (the intake's benchmark is thousands per second).
    Every other request goes on to ``app``. The cap on the body as sent is ``errors.max_body_bytes``,
    checked against ``Content-Length`` first and counted while reading."""

    def __init__(self, app: ASGIApp, intake: Intake) -> None:
        self.app, self.intake = app, intake
        self.cap = intake.config.errors.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = ROUTE.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None or int(match.group(1)) > MAX_PROJECT_ID:  # out of range: the route's 422
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        try:
            answer = await self._answer(int(match.group(1)), match.group(2) == "envelope", headers, query, receive)
        except Exception as exc:  # the store failed: the API's answer for it (503 for the database)
            error = from_exception(exc)
            if error.status >= 500 and error.code == "internal":
                log.exception("error intake failed")
            answer = refused(error.status, error.code, error.message)
        await _respond(send, answer)

    async def _answer(
        self, project_id: int, envelope: bool, headers: dict[str, str], query: dict[str, str], receive: Receive
    ) -> Answer:
        project = self.intake.authorise(project_id, headers, query)
        if isinstance(project, Answer):
            return project
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.cap:
            return self._too_large()
        body = bytearray()
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return refused(400, "invalid", "the client went away before sending its body")
            body += message.get("body", b"")
            if len(body) > self.cap:
                return self._too_large()
            if not message.get("more_body", False):
                break
        return await self.intake.receive(project, bytes(body), headers.get("content-encoding"), envelope=envelope)

    def _too_large(self) -> Answer:
        return refused(413, "too_large", f"body: larger than the {self.cap} bytes this server accepts on this endpoint")


async def _respond(send: Send, answer: Answer) -> None:
    body = json.dumps(answer.body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
