"""Appending to the audit trail: Events (who did what, when, why) and Decisions (verdicts with reasons).

Both are written inside the caller's transaction, so a state change, its Event and its Decision commit
together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.domain.decisions import Decision as DecisionRecord
from conveyor.store.tables import Decision, Event


def record_event(
    session: Session,
    kind: str,
    *,
    at: datetime,
    actor: str,
    message: str = "",
    app: str | None = None,
    environment: str | None = None,
    release_id: int | None = None,
    deployment_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    event = Event(
        kind=kind,
        app=app,
        environment=environment,
        release_id=release_id,
        deployment_id=deployment_id,
        actor=actor,
        at=at,
        message=message,
        payload=payload or {},
    )
    session.add(event)
    return event


def latest_decision(session: Session, app: str, environment: str) -> Decision | None:
    return session.scalars(
        select(Decision)
        .where(Decision.app == app, Decision.environment == environment)
        .order_by(Decision.id.desc())
        .limit(1)
    ).first()


def record_decision(session: Session, decision: DecisionRecord, at: datetime) -> bool:
    """Store ``decision`` unless the latest one for its (app, environment, deployment) says the same."""
    last = session.scalars(
        select(Decision)
        .where(
            Decision.app == decision.app,
            Decision.environment == decision.environment,
            Decision.deployment_id.is_(None)
            if decision.deployment_id is None
            else Decision.deployment_id == decision.deployment_id,
        )
        .order_by(Decision.id.desc())
        .limit(1)
    ).first()
    if last is not None and last.fingerprint == decision.fingerprint:
        return False
    session.add(
        Decision(
            app=decision.app,
            environment=decision.environment,
            deployment_id=decision.deployment_id,
            release_id=decision.release_id,
            verdict=decision.verdict.value,
            rule=decision.rule,
            summary=decision.summary,
            reasons=list(decision.reasons),
            evidence=decision.evidence,
            fingerprint=decision.fingerprint,
            at=at,
        )
    )
    return True
