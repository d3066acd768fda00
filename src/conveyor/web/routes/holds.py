"""Holds: list them (open to all), freeze, stop the line and unfreeze (writes, with a bearer token).

A block by hand is ``POST /api/apps/{app}/block`` (in :mod:`.actions`, beside ``unblock``); every kind
is listed here and explained by the one scoping function (:mod:`conveyor.domain.holds`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi import Path as PathParam

from conveyor.web.errors import error_responses
from conveyor.web.models import FreezeRequest, HoldCreated, HoldList, StopRequest, UnfreezeRequest, Unfrozen
from conveyor.web.routes.actions import Actor
from conveyor.web.state import State

router = APIRouter(prefix="/api/holds", tags=["holds"], responses=error_responses(401, 404, 409, 422, 500, 503))

HoldId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


@router.get("", response_model=HoldList)
def list_holds(state: State) -> dict[str, Any]:
    """Every hold in force (not lifted, not expired), oldest first, each with the command that lifts it."""
    return {"holds": state.operations.holds()}


@router.post("/freeze", status_code=201, response_model=HoldCreated)
def freeze(state: State, actor: Actor, body: FreezeRequest) -> dict[str, Any]:
    """Freeze every app or one, in every environment or one (exactly that scope), optionally until a time."""
    hold_id = state.operations.freeze(body.app, body.environment, body.reason, body.until, actor=actor)
    return _created(state, hold_id)


@router.post("/stop", status_code=201, response_model=HoldCreated)
def stop(state: State, actor: Actor, body: StopRequest) -> dict[str, Any]:
    """Stop the line: no automatic start in the environment, for any app, until it is unfrozen."""
    hold_id = state.operations.stop(body.environment, body.reason, body.until, actor=actor)
    return _created(state, hold_id)


@router.post("/{hold_id}/unfreeze", response_model=Unfrozen)
def unfreeze(
    state: State, actor: Actor, hold_id: HoldId, body: Annotated[UnfreezeRequest | None, Body()] = None
) -> dict[str, Any]:
    """Lift a freeze or a stop by its id; a block is refused (409: lift it with unblock)."""
    lifted = state.operations.unfreeze(hold_id, body.reason if body and body.reason else "", actor=actor)
    state.wake()
    return lifted


def _created(state: State, hold_id: int) -> dict[str, Any]:
    found = next((h for h in state.operations.holds() if h["id"] == hold_id), None)
    return found or {"id": hold_id}
