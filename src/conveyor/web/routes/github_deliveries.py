"""``GET /api/github/deliveries``: GitHub's webhook deliveries as conveyor recorded them, newest first, with
what it made of each (open to all, as ``conveyor deliveries --json`` prints it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from conveyor.github.deliveries import deliveries_for
from conveyor.web.errors import error_responses
from conveyor.web.models import DeliveryModel
from conveyor.web.state import State

router = APIRouter(prefix="/api/github", tags=["github"], responses=error_responses(404, 409, 422, 500, 503))


class DeliveriesModel(BaseModel):
    deliveries: list[DeliveryModel]


@router.get("/deliveries", response_model=DeliveriesModel)
def deliveries(
    state: State,
    app: Annotated[str | None, Query(description="only deliveries about the repository this app follows")] = None,
    delivery_state: Annotated[
        Literal["pending", "done", "ignored", "failed"] | None, Query(alias="state", description="only this state")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """Deliveries newest first: the event, its repository, branch and commit, and its state with the note
    saying what conveyor did with it or why it did nothing (a push to a branch no app follows, touching
    none of an app's paths, a payload it could not read)."""
    return deliveries_for(state.db, state.config, app, delivery_state, limit)
