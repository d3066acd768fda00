"""Where Sentry SDKs send errors: ``POST /api/{project_id}/envelope/`` and ``POST /api/{project_id}/store/``.

Authenticated by the project's key, as Sentry's own intake does: ``X-Sentry-Auth: Sentry sentry_key=KEY,
...`` or ``?sentry_key=KEY``; none is 401, a wrong one (or an unknown project, or one whose app left the
config) is 403. These routes take no API token. A request is verified, decoded (gzip, deflate, br),
parsed, rate limited per key (429 with ``Retry-After`` and ``X-Sentry-Rate-Limits``) and handed to the
group-commit writer; it is answered once its events are committed. Bodies are capped as sent
(``errors.max_body_bytes``, by the request gate) and decompressed (``errors.max_decompressed_bytes``).
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from conveyor.config.resolved import Config
from conveyor.domain.error_groups import group
from conveyor.error_intake.bodies import BodyError, TooLarge, decode
from conveyor.error_intake.envelopes import EnvelopeError, event_from_json, parse_envelope
from conveyor.error_intake.rate_limits import RateLimits, rate_limit_headers
from conveyor.error_intake.writer import EventWriter
from conveyor.store.database import Database
from conveyor.store.error_events import IncomingEvent, Project, project_by_id
from conveyor.web.errors import ApiError, error_responses
from conveyor.web.gate import body_cap

INLINE_BODY = 64 * 1024  # larger bodies are decoded and parsed on a worker thread, off the event loop
UNKNOWN_TTL = 10.0  # seconds an unknown project id is remembered as unknown
MAX_RELEASE = 200
ProjectId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The project id of the DSN (`conveyor dsn`).")]


class Projects:
    """Project ids to projects, read once each: a key never changes once made."""

    def __init__(self, db: Database, config: Config) -> None:
        self.db, self.config = db, config
        self._known: dict[int, Project] = {}
        self._unknown: dict[int, float] = {}
        self._mutex = threading.Lock()

    def get(self, project_id: int) -> Project | None:
        found = self._known.get(project_id)
        if found is not None or time.monotonic() < self._unknown.get(project_id, 0.0):
            return found
        with self.db.read() as session:
            found = project_by_id(session, project_id)
        with self._mutex:
            if found is None:
                if len(self._unknown) > 10_000:
                    self._unknown.clear()
                self._unknown[project_id] = time.monotonic() + UNKNOWN_TTL
            else:
                self._known[project_id] = found
        return found


def sentry_key(request: Request) -> str | None:
    """The key of ``X-Sentry-Auth`` (or ``Authorization: Sentry ...``), else of ``?sentry_key=``."""
    for header in ("x-sentry-auth", "authorization"):
        value = request.headers.get(header, "")
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "sentry":
            continue
        for part in rest.split(","):
            name, _, given = part.strip().partition("=")
            if name.strip() == "sentry_key" and given.strip():
                return given.strip()
    return request.query_params.get("sentry_key") or None


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


def router_for(config: Config, db: Database) -> APIRouter:
    """The intake's routes for ``config``: their body cap is ``errors.max_body_bytes``."""
    errors = config.errors
    projects = Projects(db, config)
    limits = RateLimits(errors.rate_limit)
    writer = EventWriter(db, errors.spike, link=config.link)
    router = APIRouter(tags=["error intake"], responses=RESPONSES)

    async def receive(request: Request, project_id: int, *, envelope: bool) -> JSONResponse:
        project = _authorised(request, projects.get(project_id), config)
        wait = limits.retry_after(project.id)
        if wait is not None:
            limit = errors.rate_limit
            message = f"rate limited: more than {limit.envelopes} requests for this key in {limit.per:g}s"
            raise ApiError(429, "rate_limited", message, headers=rate_limit_headers(wait))
        body = await request.body()
        encoding = request.headers.get("content-encoding")
        if len(body) > INLINE_BODY:
            event_id, events = await run_in_threadpool(
                _parse, project, body, encoding, errors.max_decompressed_bytes, envelope
            )
        else:
            event_id, events = _parse(project, body, encoding, errors.max_decompressed_bytes, envelope)
        if events:
            await asyncio.wrap_future(writer.submit(events))
        return JSONResponse({"id": event_id})

    @router.post("/api/{project_id}/envelope/", openapi_extra=BODY, response_class=JSONResponse)
    @body_cap(errors.max_body_bytes)
    async def envelope(request: Request, project_id: ProjectId) -> JSONResponse:
        """An envelope as Sentry SDKs send it: its error events are stored and grouped into issues; its
        other items (transactions, sessions, attachments, client reports, ...) are accepted and dropped."""
        return await receive(request, project_id, envelope=True)

    @router.post("/api/{project_id}/store/", openapi_extra=BODY, response_class=JSONResponse)
    @body_cap(errors.max_body_bytes)
    async def store(request: Request, project_id: ProjectId) -> JSONResponse:
        """One event as JSON (the intake of older SDKs)."""
        return await receive(request, project_id, envelope=False)

    router.writer = writer  # type: ignore[attr-defined]  # for tests and the benchmark
    return router


def _authorised(request: Request, project: Project | None, config: Config) -> Project:
    key = sentry_key(request)
    if key is None:
        raise ApiError(401, "unauthorized", "missing sentry_key (X-Sentry-Auth header or sentry_key parameter)")
    expected = project.public_key if project is not None else "-" * 32
    if not hmac.compare_digest(key.encode(), expected.encode()) or project is None or project.app not in config.apps:
        raise ApiError(403, "forbidden", "this key is not valid for this project")
    return project


def _parse(
    project: Project, body: bytes, encoding: str | None, limit: int, envelope: bool
) -> tuple[str, Sequence[IncomingEvent]]:
    try:
        data = decode(body, encoding, limit)
        if envelope:
            parsed = parse_envelope(data)
            pairs = list(parsed.events())
            header_id = parsed.header.get("event_id")
        else:
            pairs = [(event_from_json(data), data)]
            header_id = None
    except TooLarge as exc:
        raise ApiError(413, "too_large", str(exc), field="body") from None
    except (BodyError, EnvelopeError) as exc:
        raise ApiError(400, "invalid", str(exc), field="body") from None
    events = [_incoming(project, event, raw) for event, raw in pairs]
    event_id = events[0].event_id if events else str(header_id or "")
    return event_id, events


def _incoming(project: Project, event: dict[str, Any], raw: bytes) -> IncomingEvent:
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        event_id = uuid.uuid4().hex
    release = event.get("release")
    return IncomingEvent(
        project=project,
        event_id=event_id[:32],
        grouping=group(event),
        release=str(release)[:MAX_RELEASE] if release else None,
        data=raw.decode("utf-8", errors="replace"),
    )
