"""Where the ``error_rate`` check reads its counts: conveyor's own error store, or Sentry's API.

One small interface, :class:`ErrorCounts`: the number of error events of an app in an environment
between two instants, optionally of one release only. A source that cannot answer raises
:class:`ErrorCountsUnavailable` with a message a person can act on; the check turns it into an ``error``
measurement.

- :class:`ConveyorErrorCounts` reads conveyor's error store (``conveyor.store.error_events``, fed by the
  Sentry-compatible intake) through the database at ``database_url``.
- :class:`SentryErrorCounts` asks Sentry's documented "Query Discover Events in Table Format" endpoint,
  ``GET /api/0/organizations/{org}/events/`` with ``field=count()``, a search ``query`` such as
  ``event.type:error release:"shop@1.2.3"``, ``environment``, ``start`` and ``end`` (ISO 8601, UTC), and
  a bearer token; it answers ``{"data": [{"count()": 12}], "meta": {...}}``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx

from conveyor import __version__

__all__ = ["ConveyorErrorCounts", "ErrorCounts", "ErrorCountsUnavailable", "SentryErrorCounts"]


class ErrorCountsUnavailable(RuntimeError):
    """The source could not be asked, or gave an answer that is not a count; the message says which."""


class ErrorCounts(Protocol):
    def count(self, app: str, environment: str, start: datetime, end: datetime, release: str | None) -> int:
        """Error events of ``app`` in ``environment`` with ``start <= time < end`` (of ``release`` if given)."""


class ConveyorErrorCounts:
    """Counts from conveyor's own error store, in the database at ``database_url``.

    Databases are opened once per URL and kept for the life of the process (a check instance lives as
    long as its worker), with a small pool: a count is one short read.
    """

    _databases: dict[str, Any] = {}
    _lock = threading.Lock()

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def count(self, app: str, environment: str, start: datetime, end: datetime, release: str | None) -> int:
        # imported here: reading Sentry's counts needs neither SQLAlchemy nor the store
        from sqlalchemy.exc import SQLAlchemyError

        from conveyor.store.database import DatabaseUnreachable
        from conveyor.store.error_events import count_events

        try:
            db = self._database()
            with db.read() as session:
                return int(
                    count_events(session, app=app, environment=environment, start=start, end=end, release=release)
                )
        except (DatabaseUnreachable, SQLAlchemyError, OSError) as exc:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise ErrorCountsUnavailable(f"cannot read conveyor's error store: {first[0] if first else exc}") from None

    def _database(self) -> Any:
        from conveyor.store.database import Database

        with self._lock:
            db = self._databases.get(self.database_url)
            if db is None:
                db = self._databases[self.database_url] = Database(self.database_url, pool_size=2, create=False)
            return db


class SentryErrorCounts:
    """Counts from Sentry's events API (sentry.io or a self-hosted Sentry).

    ``project`` is a project slug or numeric id: an id goes in the ``project`` parameter, a slug in the
    search query (``project:<slug>``), as Sentry's API takes ids only in the parameter.
    """

    def __init__(
        self,
        *,
        url: str,
        org: str,
        project: str,
        token: str,
        query: str = "event.type:error",
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = url.rstrip("/")
        self.org, self.project, self.query = org, project, query
        self.host = urlsplit(self.base).netloc.rpartition("@")[2]
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"conveyor/{__version__}"},
        )

    def endpoint(self) -> str:
        return f"{self.base}/api/0/organizations/{quote(self.org, safe='')}/events/"

    def params(self, environment: str, start: datetime, end: datetime, release: str | None) -> httpx.QueryParams:
        terms = [self.query] if self.query.strip() else []
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("field", "count()"),
            ("environment", environment),
            ("start", _iso(start)),
            ("end", _iso(end)),
        ]
        if self.project.isdigit():
            params.append(("project", self.project))
        else:
            terms.append(f"project:{_search_value(self.project)}")
        if release is not None:
            terms.append(f"release:{_search_value(release)}")
        params.append(("query", " ".join(terms)))
        params.append(("per_page", "1"))
        return httpx.QueryParams(params)

    def count(self, app: str, environment: str, start: datetime, end: datetime, release: str | None) -> int:
        try:
            response = self._client.get(self.endpoint(), params=self.params(environment, start, end, release))
        except httpx.TimeoutException:
            raise ErrorCountsUnavailable(f"timed out asking Sentry at {self.host} for error counts") from None
        except httpx.HTTPError as exc:
            raise ErrorCountsUnavailable(f"cannot reach Sentry at {self.host}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            detail = " ".join(response.text.split())[:200]
            raise ErrorCountsUnavailable(
                f"Sentry at {self.host} answered HTTP {response.status_code} to the events query"
                + (f": {detail}" if detail else "")
            )
        return _count_from(response, self.host)

    def close(self) -> None:
        self._client.close()


def _count_from(response: httpx.Response, host: str) -> int:
    try:
        rows = response.json()["data"]
    except (ValueError, KeyError, TypeError):
        raise ErrorCountsUnavailable(f"Sentry at {host} answered without a data list") from None
    if not isinstance(rows, list):
        raise ErrorCountsUnavailable(f"Sentry at {host} answered without a data list")
    if not rows:
        return 0  # no matching project or nothing at all: Sentry answers an empty table
    value = rows[0].get("count()") if isinstance(rows[0], dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ErrorCountsUnavailable(f"Sentry at {host} answered a count() that is not a count: {value!r}")
    return int(value)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _search_value(value: str) -> str:
    """A value for Sentry's search syntax: quoted when it has spaces, quotes or a colon."""
    if value and not any(c in value for c in ' "\\:()[],'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
