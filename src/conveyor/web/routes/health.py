"""``/healthz`` for load balancers and ``/metrics`` for Prometheus; both read the database."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from conveyor.web.errors import ApiError, error_responses, first_line
from conveyor.web.models import Health
from conveyor.web.state import ApiState, State

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses=error_responses(503))
def healthz(state: State) -> Health:
    """200 when the database answers; 503 with the database's error otherwise."""
    try:
        with state.db.read() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        raise _unavailable(state, exc) from exc
    return Health(status="ok", database="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={**error_responses(503), 200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def metrics(state: State) -> Response:
    """Prometheus metrics, counted from the store at scrape time (see docs/api.md)."""
    try:
        body = generate_latest(state.registry)
    except Exception as exc:
        raise _unavailable(state, exc) from exc
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _unavailable(state: ApiState, exc: Exception) -> ApiError:
    reason = state.config.redact(first_line(exc))
    log.warning("database unavailable: %s", reason)
    return ApiError(503, "unavailable", f"the database cannot be reached: {reason}")
