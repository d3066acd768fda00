"""``GET /api/apps/{app}/errors``: the app's error issues, as ``conveyor errors --json`` prints them (open to all)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, WithJsonSchema

from conveyor.audit_trail import BadSince, parse_since
from conveyor.clock import utc_now
from conveyor.error_intake.issues import error_issues
from conveyor.web.errors import ApiError, error_responses
from conveyor.web.models import EnvironmentName
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
