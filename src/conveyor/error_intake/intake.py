"""One request to the intake, from its headers and body to its answer, free of any web framework.

:class:`Intake` authenticates (the project's key in ``X-Sentry-Auth`` or ``?sentry_key=``: none is 401, a
wrong one, an unknown project or one whose app left the config is 403), rate limits per key (429 with
``Retry-After`` and ``X-Sentry-Rate-Limits``), decodes and parses the body (400; 413 past
``errors.max_decompressed_bytes``) and waits for the writer to commit its events. Both the documented
FastAPI routes and the ASGI fast path in front of the app (both in :mod:`conveyor.web.routes.error_intake`)
answer through it, so they cannot differ.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from conveyor.config.resolved import Config
from conveyor.domain.error_groups import group
from conveyor.error_intake.bodies import BodyError, TooLarge, decode
from conveyor.error_intake.envelopes import EnvelopeError, event_from_json, parse_envelope
from conveyor.error_intake.rate_limits import RateLimits, rate_limit_headers
from conveyor.error_intake.writer import EventWriter
from conveyor.store.database import Database
from conveyor.store.error_events import IncomingEvent, Project, project_by_id

INLINE_BODY = 64 * 1024  # larger bodies are decoded and parsed on a worker thread, off the event loop
UNKNOWN_TTL = 10.0  # seconds an unknown project id is remembered as unknown
MAX_RELEASE = 200
MAX_PROJECT_ID = 2**31 - 1
ROUTE = re.compile(r"^/api/([1-9][0-9]{0,9})/(envelope|store)/$")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def refused(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    detail: dict[str, Any] = {"code": code, "message": message}
    if status in (400, 413):
        detail["field"] = "body"
    return Answer(status, {"error": detail}, headers or {})


class Projects:
    """Project ids to projects, read once each: a key never changes once made."""

    def __init__(self, db: Database) -> None:
        self.db = db
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


def sentry_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key of ``X-Sentry-Auth`` (or ``Authorization: Sentry ...``), else of ``?sentry_key=``;
    ``headers`` with lower-case names."""
    for header in ("x-sentry-auth", "authorization"):
        scheme, _, rest = headers.get(header, "").strip().partition(" ")
        if scheme.lower() != "sentry":
            continue
        for part in rest.split(","):
            name, _, given = part.strip().partition("=")
            if name.strip() == "sentry_key" and given.strip():
                return given.strip()
    return query.get("sentry_key") or None


class Intake:
    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.projects = Projects(db)
        self.limits = RateLimits(config.errors.rate_limit)
        self.writer = EventWriter(db, config.errors.spike, link=config.link)

    def authorise(self, project_id: int, headers: Mapping[str, str], query: Mapping[str, str]) -> Project | Answer:
        """The project the request may send to, or the answer refusing it (checked before the body is read)."""
        key = sentry_key(headers, query)
        if key is None:
            return refused(401, "unauthorized", "missing sentry_key (X-Sentry-Auth header or sentry_key parameter)")
        project = self.projects.get(project_id) if project_id <= MAX_PROJECT_ID else None
        expected = project.public_key if project is not None else "-" * 32
        same = hmac.compare_digest(key.encode(), expected.encode())
        if not same or project is None or project.app not in self.config.apps:
            return refused(403, "forbidden", "this key is not valid for this project")
        wait = self.limits.retry_after(project.id)
        if wait is not None:
            limit = self.config.errors.rate_limit
            message = f"rate limited: more than {limit.envelopes} requests for this key in {limit.per:g}s"
            return refused(429, "rate_limited", message, rate_limit_headers(wait))
        return project

    async def receive(self, project: Project, body: bytes, encoding: str | None, *, envelope: bool) -> Answer:
        """Decode, parse and store the body; answered once its events are committed."""
        limit = self.config.errors.max_decompressed_bytes
        try:
            if len(body) > INLINE_BODY:
                event_id, events = await run_in_threadpool(_parse, project, body, encoding, limit, envelope)
            else:
                event_id, events = _parse(project, body, encoding, limit, envelope)
        except TooLarge as exc:
            return refused(413, "too_large", str(exc))
        except (BodyError, EnvelopeError) as exc:
            return refused(400, "invalid", str(exc))
        if events:
            await asyncio.wrap_future(self.writer.submit(events))
        return Answer(200, {"id": event_id})


def _parse(
    project: Project, body: bytes, encoding: str | None, limit: int, envelope: bool
) -> tuple[str, Sequence[IncomingEvent]]:
    data = decode(body, encoding, limit)
    if envelope:
        parsed = parse_envelope(data)
        pairs = list(parsed.events())
        header_id = parsed.header.get("event_id")
    else:
        pairs = [(event_from_json(data), data)]
        header_id = None
    events = [_incoming(project, event, raw) for event, raw in pairs]
    return (events[0].event_id if events else str(header_id or "")), events


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
