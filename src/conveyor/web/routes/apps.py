"""Reads about apps, the same read models as ``conveyor status``, ``why``, ``history`` and ``logs`` (open to all)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from conveyor import views
from conveyor.web.errors import error_responses
from conveyor.web.models import AppList, AppStatusModel, EnvironmentName, HistoryModel, LogsModel, WhyModel
from conveyor.web.state import State

router = APIRouter(prefix="/api/apps", tags=["apps"], responses=error_responses(404, 422, 500, 503))


@router.get("", response_model=AppList)
def list_apps(state: State) -> dict[str, Any]:
    """Every app in config order, each as one entry of ``conveyor status --json``, and the stop-the-line
    holds in force (its banner)."""
    return {"apps": [a.to_json() for a in views.status(state.db, state.config)], "stops": views.stops(state.db)}


@router.get("/{app}", response_model=AppStatusModel)
def get_app(state: State, app: str) -> dict[str, Any]:
    """One app: per environment its latest release, state and age, plus the holds in force."""
    return views.status(state.db, state.config, app)[0].to_json()


@router.get("/{app}/why", response_model=WhyModel)
def why(state: State, app: str, environment: Annotated[EnvironmentName | None, Query()] = None) -> dict[str, Any]:
    """Per environment (or only ``environment``): the latest Decision, the explanation and the holds."""
    return views.why(state.db, state.config, app, environment)


@router.get("/{app}/history", response_model=HistoryModel)
def history(state: State, app: str, limit: Annotated[int, Query(ge=1, le=10000)] = 50) -> dict[str, Any]:
    """The app's deployments, newest first."""
    return {"app": state.config.app(app).name, "deployments": views.history(state.db, state.config, app, limit)}


@router.get("/{app}/logs", response_model=LogsModel)
def logs(
    state: State,
    app: str,
    environment: Annotated[EnvironmentName | None, Query()] = None,
    deployment: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> dict[str, Any]:
    """One deployment's steps, attempts and logs: ``deployment`` (one of the app's), else the app's newest
    deployment, in ``environment`` when given. 404 when there is none."""
    return views.logs(state.db, state.config, app, environment, deployment)
