"""``GET /api/apps/{app}/errors``: the app's error issues, as ``conveyor errors --json`` prints them (open to
all); ``POST /api/apps/{app}/dsn``: the DSN its SDK reports to, as ``conveyor dsn`` prints it (a token: it
makes the key on first use)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, WithJsonSchema

from conveyor.audit_trail import BadSince, parse_since
from conveyor.clock import utc_now
from conveyor.error_intake.issues import error_issues, project_dsn
from conveyor.web.errors import ApiError, error_responses
from conveyor.web.models import EnvironmentName
from conveyor.web.routes.actions import Actor
from conveyor.web.routes.audit import SINCE_SCHEMA
from conveyor.web.state import State

router = APIRouter(prefix="/api/apps", tags=["apps"], responses=error_responses(404, 422, 500, 503))


class ErrorIssueModel(BaseModel):
    id: int
    environment: str
    title: str
    culprit: str
    level: str
    events: int
    total_events: int
    first_seen: str
    first_release: str | None
    last_seen: str
    last_release: str | None


class ErrorIssuesModel(BaseModel):
    app: str
    environment: str | None
    since: str
    issues: list[ErrorIssueModel]


@router.get("/{app}/errors", response_model=ErrorIssuesModel)
def errors(
    state: State,
    app: str,
    environment: Annotated[EnvironmentName | None, Query()] = None,
    since: Annotated[
        str | None,
        Query(description="an ISO 8601 time (UTC unless it has an offset) or an age: 30m, 12h, 7d, 2w"),
        WithJsonSchema(SINCE_SCHEMA),
    ] = None,
) -> dict[str, Any]:
    """Issues seen since ``since`` (default: the last 24 hours), most events first: events in that window
    (to the minute), total events, first and last seen, and the release that introduced each."""
    now = utc_now()
    try:
        after = parse_since(since, now) if since is not None else None
    except BadSince as exc:
        raise ApiError(422, "invalid", str(exc).replace("--since", "since", 1), field="since") from None
    return error_issues(state.db, state.config, app, environment, after, now)


class DsnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    environment: EnvironmentName


class DsnModel(BaseModel):
    app: str
    environment: str
    dsn: str


@router.post("/{app}/dsn", response_model=DsnModel, responses=error_responses(401, 413))
def dsn(state: State, actor: Actor, app: str, body: DsnRequest) -> dict[str, str]:
    """The Sentry DSN of the app in an environment: give it to the app as ``SENTRY_DSN``, and its errors
    come to conveyor. The key is made on first use and stays the same after."""
    return project_dsn(state.db, state.config, app, body.environment, utc_now())
