"""The audit trail: operator actions (open to all, like every read) and the chain's verification (needs a
token: it reads every event there is)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import WithJsonSchema

from conveyor.audit_trail import MAX_PAGE, BadSince, operator_actions, parse_since, verify_chain
from conveyor.clock import utc_now
from conveyor.domain.audit import Anchor
from conveyor.web.errors import ApiError, error_responses
from conveyor.web.models import AuditPage, AuditVerification
from conveyor.web.routes.actions import Actor
from conveyor.web.state import State

# what the server parses, described so that a client (and a fuzzer) sends only what it accepts
SINCE_SCHEMA = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "string", "pattern": "^[0-9]{1,6}[mhdw]$"},
    ]
}

router = APIRouter(prefix="/api/audit", tags=["audit"], responses=error_responses(422, 500, 503))


@router.get("", response_model=AuditPage, responses=error_responses(404))
def list_actions(
    state: State,
    since: Annotated[
        str | None,
        Query(description="an ISO 8601 time (UTC unless it has an offset) or an age: 30m, 12h, 7d, 2w"),
        WithJsonSchema(SINCE_SCHEMA),
    ] = None,
    app: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="an event id: only older actions")] = None,
) -> dict[str, Any]:
    """Operator actions, newest first: actor, action, app, environment, reason and time. Page back with
    ``before`` set to the answer's ``next_before``."""
    try:
        after = parse_since(since, utc_now()) if since is not None else None
    except BadSince as exc:
        raise ApiError(422, "invalid", str(exc), field="since") from exc
    return operator_actions(state.db, state.config, since=after, app=app, limit=limit, before=before).to_json()


@router.get("/verify", response_model=AuditVerification, responses=error_responses(401))
def verify(
    state: State,
    actor: Actor,
    expect: Annotated[
        str | None,
        Query(
            pattern=r"^[1-9][0-9]{0,17}:[0-9a-fA-F]{64}$",
            description="SEQ:HASH: the chain must still have HASH at position SEQ (a head kept elsewhere)",
        ),
    ] = None,
) -> dict[str, Any]:
    """Walk the events' hash chain from the first event to the head; ``ok`` false names the first event
    whose chain breaks (or the head, when the newest events are gone). Answered 200 either way."""
    try:
        anchor = Anchor.parse(expect) if expect else None
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc), field="expect") from exc
    return verify_chain(state.db, anchor)
