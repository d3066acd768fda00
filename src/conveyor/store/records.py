"""Appending to the audit trail: Events (who did what, when, why) and Decisions (verdicts with reasons).

Both are written inside the caller's transaction, so a state change, its Event and its Decision commit
together or not at all. So are the Event's notifications: one ``outbox`` row per notifier the
:class:`NotificationRouter` routes it to. The router is installed on the Database at process start
(:func:`conveyor.notify.routing.install`) and reaches this module through the session's ``info``, so
every writer of events (orchestrator, leases, operations) notifies alike without knowing the config.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.domain.decisions import Decision as DecisionRecord
from conveyor.store.tables import Decision, Event, Hold, Outbox

ROUTER_INFO_KEY = "notification_router"  # where Database.write() puts its router in Session.info


class NotificationRouter(Protocol):
    def notifiers_for(self, kind: str, app: str | None) -> Sequence[str]:
        """The names of the notifiers that get an event of ``kind`` about ``app``."""
        ...


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
    router: NotificationRouter | None = session.info.get(ROUTER_INFO_KEY)
    if router is not None:
        for notifier in router.notifiers_for(kind, app):
            session.add(
                Outbox(
                    event=event,
                    notifier=notifier,
                    release_id=release_id,
                    delivery_id=str(uuid.uuid4()),
                    state="pending",
                    attempts=0,
                    next_attempt_at=at,
                )
            )
    return event


def deployment_event(
    session: Session, d: Any, kind: str, now: datetime, message: str, payload: dict[str, Any] | None = None
) -> Event:
    """An Event by conveyor itself about deployment ``d`` (a Deployment or a row with the same fields)."""
    return record_event(
        session,
        kind,
        at=now,
        actor="conveyor",
        message=message,
        app=d.app,
        environment=d.environment,
        release_id=d.release_id,
        deployment_id=d.id,
        payload=payload,
    )


def latest_decision(session: Session, app: str, environment: str) -> Decision | None:
    return session.scalars(
        select(Decision)
        .where(Decision.app == app, Decision.environment == environment)
        .order_by(Decision.id.desc())
        .limit(1)
    ).first()


def record_decision(session: Session, decision: DecisionRecord, at: datetime, *, only_if_changed: bool = True) -> bool:
    """Store ``decision`` unless the latest one for its (app, environment, deployment) says the same.

    ``only_if_changed=False`` skips that comparison, for a decision that came with a change of state."""
    if not only_if_changed:
        _add_decision(session, decision, at)
        return True
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
    _add_decision(session, decision, at)
    return True


def _add_decision(session: Session, decision: DecisionRecord, at: datetime) -> None:
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


def lift_hold(session: Session, hold: Hold, now: datetime, actor: str, reason: str) -> None:
    """Lift ``hold`` and record who did and why, in the caller's transaction."""
    hold.lifted_at = now
    hold.lifted_by = actor
    hold.lift_reason = reason
    record_event(
        session,
        "hold.lifted",
        at=now,
        actor=actor,
        message=reason,
        app=hold.app,
        environment=hold.environment,
        release_id=hold.release_id,
        payload={"hold_id": hold.id, "kind": hold.kind},
    )
