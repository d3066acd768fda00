"""The read model of ``conveyor errors`` and ``GET /api/apps/{app}/errors``: an app's issues since a time;
and the DSN an app's SDK reports to (``conveyor dsn``, ``POST /api/apps/{app}/dsn``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from conveyor.config.resolved import Config
from conveyor.store.database import Database
from conveyor.store.error_events import dsn, issues, project_for

DEFAULT_SINCE = timedelta(hours=24)


def error_issues(
    db: Database, config: Config, app: str, environment: str | None, since: datetime | None, now: datetime
) -> dict[str, Any]:
    """The issues of ``app`` (in ``environment``, else every one) seen since ``since`` (default: the last
    24 hours), most events first, each with its events since then, its total, first and last seen and the
    release that introduced it."""
    name = config.app(app).name
    if environment is not None:
        config.check_environment(environment)
    since = since if since is not None else now - DEFAULT_SINCE
    with db.read() as session:
        found = issues(session, name, environment, since)
    return {
        "app": name,
        "environment": environment,
        "since": since.isoformat(),
        "issues": [issue.to_json() for issue in found],
    }


def project_dsn(db: Database, config: Config, app: str, environment: str, now: datetime) -> dict[str, str]:
    """The Sentry DSN of ``app`` in ``environment`` under the config's ``public_url``; its key is made
    on first use (a row, no event) and stays the same after."""
    name = config.app(app).name
    config.check_environment(environment)
    with db.write() as session:
        project = project_for(session, name, environment, now)
        return {"app": name, "environment": environment, "dsn": dsn(config.public_url, project)}
