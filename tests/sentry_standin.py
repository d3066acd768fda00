"""A stand-in for Sentry's web API on 127.0.0.1, answering the documented request and response shapes of
the endpoints conveyor uses, and checking what it is sent as Sentry would:

- ``GET /api/0/organizations/{org}/events/`` ("Query Discover Events in Table Format"): ``field=count()``,
  ``query`` in Sentry's search syntax (``event.type:error project:shop release:"shop@1.2"``),
  ``environment``, ``start``/``end`` (ISO 8601), optional ``project`` ids; answers
  ``{"data": [{"count()": N}], "meta": {"fields": {"count()": "integer"}}}``;
- ``POST /api/0/organizations/{org}/releases/`` ("Create a New Release for an Organization"): JSON with
  ``version`` and ``projects`` (required); 201 when created, 208 when it already exists;
- ``POST /api/0/organizations/{org}/releases/{version}/deploys/`` ("Create a Deploy"): JSON with
  ``environment`` (required), optional ``name`` (≤ 64 characters), ``url``, ``dateStarted``,
  ``dateFinished``; 404 for an unknown release; ``GET`` lists the release's deploys.

Every request needs ``Authorization: Bearer <token>`` (401 otherwise). Error counts come from
``count_errors(project, environment, release, start, end)``, by default from ``events``, a list of
:class:`ErrorEvent`. ``mode`` ``error`` answers 500 to everything; ``slow`` holds each request first.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

Mode = Literal["ok", "error", "slow"]


@dataclass(frozen=True)
class ErrorEvent:
    at: datetime
    project: str
    environment: str
    release: str | None
    type: str = "error"


@dataclass(frozen=True)
class EventsQuery:
    org: str
    environment: str
    start: datetime
    end: datetime
    project: str | None  # a slug from the query or an id from the parameter
    release: str | None
    event_type: str | None
    raw: dict[str, list[str]]


@dataclass
class SentryStandIn:
    token: str = "sntrys_test_token"
    org: str = "acme"
    mode: Mode = "ok"
    hold_seconds: float = 1.0
    events: list[ErrorEvent] = field(default_factory=list)
    count_errors: Callable[[EventsQuery], int] | None = None
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)  # version -> the body it was created with
    deploys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # version -> deploys
    queries: list[EventsQuery] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)  # method, path, headers, body
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SentryStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    # -- answering -------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length", "0"))
        raw = handler.rfile.read(length) if length else b""
        headers = dict(handler.headers.items())
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        with self._lock:
            self.requests.append((method, parts.path, headers, body))
        if self.mode == "slow":
            time.sleep(self.hold_seconds)
        if self.mode == "error":
            return _reply(handler, 500, {"detail": "Internal Error"})
        if headers.get("Authorization") != f"Bearer {self.token}":
            return _reply(handler, 401, {"detail": "Invalid token"})
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if segments[:3] != ["api", "0", "organizations"] or len(segments) < 5 or segments[3] != self.org:
            return _reply(handler, 404, {"detail": "The requested resource does not exist"})
        rest = segments[4:]
        if rest == ["events"] and method == "GET":
            return self._events(handler, parse_qs(parts.query, keep_blank_values=True))
        if rest == ["releases"] and method == "POST":
            return self._create_release(handler, body)
        if len(rest) == 3 and rest[0] == "releases" and rest[2] == "deploys":
            return self._deploys(handler, method, rest[1], body)
        return _reply(handler, 404, {"detail": "The requested resource does not exist"})

    def _events(self, handler: BaseHTTPRequestHandler, params: dict[str, list[str]]) -> None:
        if params.get("field") != ["count()"]:
            return _reply(handler, 400, {"detail": f"unexpected field {params.get('field')}"})
        try:
            start, end = _parse_time(params["start"][0]), _parse_time(params["end"][0])
            terms = shlex.split(params.get("query", [""])[0])
        except (KeyError, ValueError) as exc:
            return _reply(handler, 400, {"detail": f"Invalid query: {exc}"})
        found: dict[str, str] = {}
        for term in terms:
            key, colon, value = term.partition(":")
            if not colon:
                return _reply(handler, 400, {"detail": f"Invalid query: free text {term!r} not expected"})
            found[key] = value
        project = found.get("project") or (params.get("project") or [None])[0]
        query = EventsQuery(
            org=self.org,
            environment=(params.get("environment") or [""])[0],
            start=start,
            end=end,
            project=project,
            release=found.get("release"),
            event_type=found.get("event.type"),
            raw=params,
        )
        with self._lock:
            self.queries.append(query)
        count = self.count_errors(query) if self.count_errors else self._count(query)
        _reply(handler, 200, {"data": [{"count()": count}], "meta": {"fields": {"count()": "integer"}}})

    def _count(self, q: EventsQuery) -> int:
        return sum(
            1
            for e in self.events
            if q.start <= e.at < q.end
            and e.environment == q.environment
            and (q.project is None or e.project == q.project)
            and (q.release is None or e.release == q.release)
            and (q.event_type is None or e.type == q.event_type)
        )

    def _create_release(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        if not isinstance(body, dict) or not body.get("version") or not body.get("projects"):
            return _reply(handler, 400, {"detail": "version and projects are required"})
        version = body["version"]
        with self._lock:
            existed = version in self.releases
            self.releases.setdefault(version, body)
        _reply(handler, 208 if existed else 201, {"version": version, "projects": body["projects"]})

    def _deploys(self, handler: BaseHTTPRequestHandler, method: str, version: str, body: Any) -> None:
        with self._lock:
            if version not in self.releases:
                return _reply(handler, 404, {"detail": "The requested resource does not exist"})
            if method == "GET":
                return _reply(handler, 200, list(self.deploys.get(version, [])))
            if not isinstance(body, dict) or not body.get("environment"):
                return _reply(handler, 400, {"environment": ["This field is required."]})
            if len(body.get("name") or "") > 64:
                return _reply(handler, 400, {"name": ["Ensure this field has no more than 64 characters."]})
            for key in ("dateStarted", "dateFinished"):
                if body.get(key) is not None:
                    try:
                        _parse_time(body[key])
                    except ValueError:
                        return _reply(handler, 400, {key: ["Datetime has wrong format."]})
            deploy = {
                "id": str(sum(len(d) for d in self.deploys.values()) + 1),
                "environment": body["environment"],
                "name": body.get("name"),
                "url": body.get("url"),
                "dateStarted": body.get("dateStarted"),
                "dateFinished": body.get("dateFinished") or datetime.now(UTC).isoformat(),
            }
            self.deploys.setdefault(version, []).append(deploy)
        _reply(handler, 201, deploy)


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _reply(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
