"""Appending to the audit trail: Events (who did what, when, why) and Decisions (verdicts with reasons).

Both are written inside the caller's transaction, so a state change, its Event and its Decision commit
together or not at all. Events are sealed into the audit hash chain when that transaction commits
(:mod:`conveyor.store.chain`); an operator action's event also carries the action and the operator's
reason (:mod:`conveyor.domain.audit`). So are the Event's notifications: one ``outbox`` row per notifier the
:class:`NotificationRouter` routes it to. The router is installed on the Database at process start
(:func:`conveyor.notify.routing.install`) and reaches this module through the session's ``info``, so
every writer of events (orchestrator, leases, operations) notifies alike without knowing the config.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from conveyor.domain.audit import OperatorAction, check_action
from conveyor.domain.decisions import Decision as DecisionRecord
from conveyor.store.chain import append
from conveyor.store.tables import (
    Decision,
    Hold,
    Outbox,
    StandingDecision,
    among,
    execute_rows,
    insert_for,
    insert_rows,
)

# Appends go to the tables, not through the mapped classes: the ORM's bulk INSERT did more per row than
# the database did, and a busy pass appends thousands of rows
DECISIONS = cast(Table, Decision.__table__)
OUTBOX = cast(Table, Outbox.__table__)
ROUTER_INFO_KEY = "notification_router"  # where Database.write() puts its router in Session.info


class NotificationRouter(Protocol):
    def notifiers_for(self, kind: str, app: str | None) -> Sequence[str]:
        """The names of the notifiers that get an event of ``kind`` about ``app``."""
        ...


@dataclass(frozen=True)
class About:
    """What one Event is about, for :func:`record_events`."""

    message: str = ""
    app: str | None = None
    environment: str | None = None
    release_id: int | None = None
    deployment_id: int | None = None
    payload: dict[str, Any] | None = None


def record_events(
    session: Session,
    kind: str,
    *,
    at: datetime,
    actor: str,
    about: Sequence[About],
    action: OperatorAction | None = None,
    reason: str | None = None,
) -> list[int]:
    """Append one Event of ``kind`` per item of ``about`` and their notifications; returns the Event ids,
    ascending in the order of ``about``. With ``action``, the events record that operator action and
    ``reason`` (see :data:`conveyor.domain.audit.OPERATOR_ACTIONS`).

    One INSERT for the events and one for their outbox rows, however many there are: a pass that starts
    or finishes a hundred deployments writes a hundred events of each kind. The ids are taken before
    the insert (:func:`conveyor.store.chain.append`), so outbox rows are added in event id order, the
    order one release's notifications are delivered in."""
    if not about:
        return []
    if action is not None:
        check_action(action, kind, reason)
    rows = [
        {
            "kind": kind,
            "app": a.app,
            "environment": a.environment,
            "release_id": a.release_id,
            "deployment_id": a.deployment_id,
            "actor": actor,
            "at": at,
            "message": a.message,
            "payload": a.payload or {},
            "action": action.name if action else None,
            "reason": reason,
        }
        for a in about
    ]
    ids = append(session, rows)
    router: NotificationRouter | None = session.info.get(ROUTER_INFO_KEY)
    if router is not None:
        outbox = [
            {
                "event_id": event_id,
                "notifier": notifier,
                "release_id": a.release_id,
                "delivery_id": str(uuid.uuid4()),
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": at,
            }
            for event_id, a in zip(ids, about, strict=True)
            for notifier in router.notifiers_for(kind, a.app)
        ]
        if outbox:
            session.execute(insert(OUTBOX), outbox)
    return ids


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
    action: OperatorAction | None = None,
    reason: str | None = None,
) -> int:
    """Append one Event and its notifications; returns its id."""
    about = About(message, app, environment, release_id, deployment_id, payload)
    return record_events(session, kind, at=at, actor=actor, about=[about], action=action, reason=reason)[0]


def deployment_events(
    session: Session, kind: str, now: datetime, items: Sequence[tuple[Any, str, dict[str, Any] | None]]
) -> list[int]:
    """Events by conveyor itself about deployments: ``items`` are (deployment or a row with the same
    fields, message, payload)."""
    about = [About(message, d.app, d.environment, d.release_id, d.id, payload) for d, message, payload in items]
    return record_events(session, kind, at=now, actor="conveyor", about=about)


def deployment_event(
    session: Session, d: Any, kind: str, now: datetime, message: str, payload: dict[str, Any] | None = None
) -> int:
    """An Event by conveyor itself about deployment ``d`` (a Deployment or a row with the same fields)."""
    return deployment_events(session, kind, now, [(d, message, payload)])[0]


Place = tuple[str, str, int | None]  # (app, environment, deployment): where a decision stands


def latest_fingerprints(
    session: Session, deployment_ids: Collection[int], unbound_apps: Collection[str] | None = None
) -> dict[Place, str]:
    """The fingerprint of the latest decision per place, for ``deployment_ids`` and for decisions about no
    deployment (a promotion, a manual tier waiting for one) of ``unbound_apps``, or of every app when None.
    Bounded by the places asked about, whatever the history: decisions are indexed by deployment, and the
    latest about no deployment is kept per place in ``standing_decisions``."""
    found: dict[Place, str] = {}
    if deployment_ids:
        newest = (
            select(func.max(Decision.id))
            .where(among(Decision.deployment_id, deployment_ids))
            .group_by(Decision.deployment_id)
        )
        rows = session.execute(
            select(Decision.app, Decision.environment, Decision.deployment_id, Decision.fingerprint).where(
                Decision.id.in_(newest)
            )
        )
        found = {(r.app, r.environment, r.deployment_id): r.fingerprint for r in rows}
    if unbound_apps is None or unbound_apps:
        standing = select(StandingDecision.app, StandingDecision.environment, StandingDecision.fingerprint)
        if unbound_apps is not None:
            standing = standing.where(among(StandingDecision.app, unbound_apps))
        found |= {(app, environment, None): fingerprint for app, environment, fingerprint in session.execute(standing)}
    return found


def latest_decision(session: Session, app: str, environment: str) -> Decision | None:
    return session.scalars(
        select(Decision)
        .where(Decision.app == app, Decision.environment == environment)
        .order_by(Decision.id.desc())
        .limit(1)
    ).first()


def record_decisions(session: Session, decisions: Sequence[DecisionRecord], at: datetime) -> None:
    """Store decisions that came with a change of state (so are news), with one INSERT; those about no
    deployment also become their place's standing decision."""
    if not decisions:
        return
    standing = {(d.app, d.environment): d.fingerprint for d in decisions if d.deployment_id is None}
    if standing:
        rows = [{"app": a, "environment": e, "fingerprint": f, "at": at} for (a, e), f in standing.items()]
        execute_rows(session, _stand(session.get_bind().dialect.name), rows)
    insert_rows(
        session,
        DECISIONS,
        [
            {
                "app": d.app,
                "environment": d.environment,
                "deployment_id": d.deployment_id,
                "release_id": d.release_id,
                "verdict": d.verdict.value,
                "rule": d.rule,
                "summary": d.summary,
                "reasons": list(d.reasons),
                "evidence": d.evidence,
                "fingerprint": d.fingerprint,
                "at": at,
            }
            for d in decisions
        ],
    )


@functools.cache
def _stand(dialect: str) -> Any:
    """The upsert of places' standing decisions, built once per dialect."""
    table = cast(Table, StandingDecision.__table__)
    upsert = insert_for(dialect, table)
    return upsert.on_conflict_do_update(
        index_elements=[table.c.app, table.c.environment],
        set_={"fingerprint": upsert.excluded.fingerprint, "at": upsert.excluded.at},
    )


def raise_hold(
    session: Session,
    hold: Hold,
    message: str,
    *,
    payload: dict[str, Any] | None = None,
    action: OperatorAction | None = None,
) -> Hold:
    """Add ``hold`` and its ``hold.created`` event in the caller's transaction; ``action`` (with the hold's
    reason) when an operator asked for it, ``payload`` for what this kind of hold adds to the event."""
    session.add(hold)
    session.flush()
    record_event(
        session,
        "hold.created",
        at=hold.since,
        actor=hold.actor,
        message=message,
        app=hold.app,
        environment=hold.environment,
        release_id=hold.release_id,
        deployment_id=hold.deployment_id,
        payload={"hold_id": hold.id, "kind": hold.kind, **(payload or {})},
        action=action,
        reason=hold.reason if action else None,
    )
    return hold


def lift_hold(
    session: Session, hold: Hold, now: datetime, actor: str, reason: str, action: OperatorAction | None = None
) -> None:
    """Lift ``hold`` and record who did and why, in the caller's transaction; ``action`` when an operator
    asked for it."""
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
        action=action,
        reason=reason if action else None,
    )
