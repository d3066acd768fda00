"""Queueing a deployment: the one way a deployment row comes to be, with its ``deployment.created`` Event.

Used by the orchestrator (promotions), the controls (rollbacks) and the operations (releases, deploys,
promotions by hand), always inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from conveyor.domain.audit import OperatorAction
from conveyor.domain.model import DeploymentState, Override
from conveyor.store.events import record_event
from conveyor.store.tables import Deployment


def create_deployment(
    session: Session,
    *,
    release_id: int,
    app: str,
    environment: str,
    now: datetime,
    actor: str,
    origin_key: str | None,
    message: str,
    override: Override | None = None,
    action: OperatorAction | None = None,
    reason: str | None = None,
) -> Deployment:
    """A new pending deployment and its Event, in the caller's transaction; ``action`` and ``reason`` when
    an operator asked for it (see :mod:`conveyor.domain.audit`)."""
    d = Deployment(
        release_id=release_id,
        app=app,
        environment=environment,
        state=DeploymentState.PENDING.value,
        origin_key=origin_key,
        queued_at=now,
        updated_at=now,
        created_by=actor,
        summary=message,
        override=override.value if override else None,
    )
    session.add(d)
    session.flush()
    record_event(
        session,
        "deployment.created",
        at=now,
        actor=actor,
        message=message,
        app=app,
        environment=environment,
        release_id=release_id,
        deployment_id=d.id,
        action=action,
        reason=reason,
    )
    return d
