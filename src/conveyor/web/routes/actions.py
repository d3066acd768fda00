"""The writes: cut a release, deploy, promote, block, unblock. Each needs a bearer token (see :mod:`..auth`) and
records ``api:<token name>`` as the actor; after it commits, an attached conductor is woken.

Every route here is one of :class:`~conveyor.web.gate.RequestGate`'s ``writes``: the token is checked
before the body is read.

The handlers are plain ``def``: git work in ``create_release`` blocks, so FastAPI runs them in its
thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor import views
from conveyor.errors import OperationError
from conveyor.store.tables import Deployment, Release
from conveyor.web.errors import ApiError, error_responses
from conveyor.web.models import (
    BlockRequest,
    DeploymentQueued,
    DeployRequest,
    HoldCreated,
    PromoteRequest,
    ReleaseCreated,
    ReleaseRequest,
    Unblocked,
    UnblockRequest,
)
from conveyor.web.state import ApiState, State

bearer = HTTPBearer(auto_error=False, description="a token from the config's api.tokens")


def token_actor(request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The actor :class:`~conveyor.web.gate.RequestGate` found for the request's token before its body was
    read (``bearer`` is here so that /openapi.json describes the scheme)."""
    actor: str = request.state.actor
    return actor


Actor = Annotated[str, Depends(token_actor)]  # a route that takes an Actor needs a token: the gate checks it

router = APIRouter(prefix="/api/apps", tags=["actions"], responses=error_responses(401, 404, 409, 413, 422, 500, 503))


@router.post(
    "/{app}/releases",
    status_code=201,
    response_model=ReleaseCreated,
    responses={
        **error_responses(502),
        200: {"model": ReleaseCreated, "description": "the commit already was a release"},
    },
)
def create_release(
    state: State, actor: Actor, app: str, response: Response, body: Annotated[ReleaseRequest | None, Body()] = None
) -> ReleaseCreated:
    """Cut a release of the app from ``ref`` (default: its branch); it heads for the first environment."""
    ref, reason = (body.ref, body.reason) if body else (None, None)
    result = state.operations.create_release(app, ref, actor=actor, reason=reason)
    if result.created:
        state.wake()
    else:
        response.status_code = 200
    return ReleaseCreated(
        id=result.release_id,
        app=app,
        label=result.label,
        sha=result.sha,
        created=result.created,
        commits=result.commits,
        environment=state.config.environments[0],
    )


@router.post("/{app}/deploy", status_code=202, response_model=DeploymentQueued)
def deploy(state: State, actor: Actor, app: str, body: DeployRequest) -> DeploymentQueued:
    """Queue a deployment of an existing release (label or SHA prefix) to one environment.

    A stop, freeze or closed window there refuses it (409) unless ``force`` with a ``reason``."""
    deployment_id = state.operations.deploy(
        app, body.version, body.environment, actor=actor, force=body.force, reason=body.reason or ""
    )
    state.wake()
    queued = _queued(state, deployment_id)
    queued.waits = state.operations.waits_behind(deployment_id)
    return queued


@router.post("/{app}/promote", status_code=202, response_model=DeploymentQueued)
def promote(
    state: State, actor: Actor, app: str, body: Annotated[PromoteRequest | None, Body()] = None
) -> DeploymentQueued:
    """Promote the newest release that passed the previous environment (the manual tier's gate).

    Every refusal depends on the pipeline's state (nothing passed yet, nothing newer, held), so it is a
    409 ``conflict`` carrying the app's latest Decision as ``error.decision`` when there is one."""
    to = body.to if body else None
    force, reason = (body.force, body.reason or "") if body else (False, "")
    try:
        deployment_id = state.operations.promote(app, to, actor=actor, force=force, reason=reason)
    except OperationError as exc:
        raise ApiError(409, "conflict", str(exc), decision=_latest_decision(state, app, to)) from exc
    state.wake()
    return _queued(state, deployment_id)


@router.post("/{app}/unblock", response_model=Unblocked)
def unblock(state: State, actor: Actor, app: str, body: UnblockRequest) -> Unblocked:
    """Lift the automatic block(s) on the app, in one environment or all; the reason is recorded."""
    lifted = state.operations.unblock(app, body.environment, body.reason, actor=actor)
    state.wake()
    return Unblocked(app=app, lifted=lifted)


@router.post("/{app}/block", status_code=201, response_model=HoldCreated)
def block(state: State, actor: Actor, app: str, body: BlockRequest) -> dict[str, Any]:
    """Block the app by hand, in one environment and every later one (or all); only unblock lifts it."""
    hold_id = state.operations.block(app, body.environment, body.reason, actor=actor)
    found = next((h for h in state.operations.holds() if h["id"] == hold_id), None)
    return found or {"id": hold_id}


def _queued(state: ApiState, deployment_id: int) -> DeploymentQueued:
    with state.db.read() as session:
        row = session.get(Deployment, deployment_id)
        release = session.get(Release, row.release_id) if row else None
        if row is None or release is None:
            raise ApiError(500, "internal", "the queued deployment could not be read back")
        return DeploymentQueued(deployment_id=row.id, app=row.app, environment=row.environment, release=release.label)


def _latest_decision(state: ApiState, app: str, environment: str | None) -> dict[str, Any] | None:
    answer = views.why(state.db, state.config, app, environment)
    decisions = [env["decision"] for env in answer["environments"].values() if env["decision"]]
    return max(decisions, key=lambda d: d["at"] or "", default=None)
