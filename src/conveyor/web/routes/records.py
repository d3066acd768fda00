"""One release or one deployment by id, with what belongs to it (open to all)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam

from conveyor.web.details import deployment_detail, release_detail
from conveyor.web.errors import ApiError, error_responses
from conveyor.web.models import DeploymentModel, ReleaseModel
from conveyor.web.state import State

router = APIRouter(prefix="/api", tags=["records"], responses=error_responses(404, 422, 500, 503))

RowId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]  # the store's ids are 32-bit integers


@router.get("/releases/{release_id}", response_model=ReleaseModel)
def get_release(state: State, release_id: RowId) -> dict[str, Any]:
    """A release: SHA, label, the commits since the previous release, and its deployments."""
    found = release_detail(state.db, release_id)
    if found is None:
        raise ApiError(404, "not_found", f"no release #{release_id}", field="release_id")
    return found


@router.get("/deployments/{deployment_id}", response_model=DeploymentModel)
def get_deployment(state: State, deployment_id: RowId) -> dict[str, Any]:
    """A deployment with its steps (timings, outcome, measurements, log) and every attempt of each step."""
    found = deployment_detail(state.db, deployment_id)
    if found is None:
        raise ApiError(404, "not_found", f"no deployment #{deployment_id}", field="deployment_id")
    return found
