"""The controls that change what runs: roll back (vetoing the release rolled back from), lift a veto,
cancel. Each needs a bearer token and records ``api:<token name>`` as the actor, with the reason given;
after it commits, an attached conductor is woken."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from conveyor.web.errors import error_responses
from conveyor.web.models import (
    AppCancelRequest,
    Cancelled,
    CancelRequest,
    RollbackQueued,
    RollbackRequest,
    Unvetoed,
    UnvetoRequest,
)
from conveyor.web.routes.actions import Actor
from conveyor.web.routes.records import RowId
from conveyor.web.state import State

router = APIRouter(prefix="/api", tags=["controls"], responses=error_responses(401, 404, 409, 422, 500, 503))


@router.post("/apps/{app}/rollback", status_code=202, response_model=RollbackQueued)
def rollback(state: State, actor: Actor, app: str, body: RollbackRequest) -> RollbackQueued:
    """Deploy an earlier release now (default: the last good one before what runs), passing the holds of
    that environment but never a lock; the release rolled back from is vetoed there."""
    result = state.operations.rollback(app, body.environment, body.reason, body.to, actor=actor)
    state.wake()
    return RollbackQueued(
        deployment_id=result.deployment_id,
        app=app,
        environment=body.environment,
        release=result.to,
        vetoed=result.rolled_back_from,
    )


@router.post("/apps/{app}/unveto", response_model=Unvetoed)
def unveto(state: State, actor: Actor, app: str, body: UnvetoRequest) -> Unvetoed:
    """Lift the veto on a release in an environment: it may be started there automatically again."""
    hold_id = state.operations.unveto(app, body.version, body.environment, body.reason, actor=actor)
    state.wake()
    return Unvetoed(app=app, release=body.version, environment=body.environment, hold_id=hold_id)


@router.post("/apps/{app}/cancel", response_model=Cancelled)
def cancel_app(state: State, actor: Actor, app: str, body: Annotated[AppCancelRequest, Body()]) -> Cancelled:
    """Cancel the app's queued and running deployments (in one environment, or all): queued ones end at
    once, running ones at their worker's next heartbeat. 409 when there is nothing to cancel."""
    ids = state.operations.cancel(app, body.environment, body.reason, actor=actor)
    state.wake()
    return Cancelled(cancelled=ids)


@router.post("/deployments/{deployment_id}/cancel", response_model=Cancelled)
def cancel_deployment(state: State, actor: Actor, deployment_id: RowId, body: CancelRequest) -> Cancelled:
    """Cancel one deployment by id."""
    ids = state.operations.cancel(None, None, body.reason, deployment_id=deployment_id, actor=actor)
    state.wake()
    return Cancelled(cancelled=ids)
