"""Set-based versions of two intents a busy pass applies by the hundred: Start and Promote.

They are also the orchestrator's handlers for a single Start or Promote (a group of one), so there is one
implementation of each: a handful of statements for the whole group (one compare-and-set UPDATE ...
RETURNING, batched INSERTs) instead of several statements per intent. The orchestrator records the
intents' decisions, runs a group inside a savepoint and, if anything goes wrong, undoes it and applies
the intents one at a time, so each still happens whole or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from conveyor.domain.decisions import Promote, Start
from conveyor.domain.model import DeploymentState, StepKind, StepState
from conveyor.store.records import deployment_event
from conveyor.store.tables import Deployment, Lock, Step

SYSTEM = "conveyor"
NOT_STARTED = (DeploymentState.PENDING.value, DeploymentState.WAITING.value)
ACTIVE = (DeploymentState.DEPLOYING.value, DeploymentState.VERIFYING.value, DeploymentState.BAKING.value)


def _compare_and_set(
    session: Session, ids: Sequence[int], expected: Sequence[str], values: dict[str, Any]
) -> dict[int, Any]:
    """Move the deployments among ``ids`` that are still in an ``expected`` state; returns their rows."""
    if not ids:
        return {}
    rows = session.execute(
        update(Deployment)
        .where(Deployment.id.in_(ids), Deployment.state.in_(expected))
        .values(**values)
        .returning(Deployment.id, Deployment.app, Deployment.environment, Deployment.release_id),
        execution_options={"synchronize_session": False},
    ).all()
    return {row.id: row for row in rows}


def start_all(session: Session, intents: Sequence[Start], now: datetime) -> list[bool]:
    wanted = {name for intent in intents for name in intent.locks}
    taken = dict(session.execute(select(Lock.name, Lock.deployment_id).where(Lock.name.in_(wanted))).all())
    chosen: list[Start] = []
    granted: set[str] = set()
    for intent in intents:
        if any(taken.get(n, intent.deployment_id) != intent.deployment_id or n in granted for n in intent.locks):
            continue  # a lock is held, or an earlier intent of this group takes it: re-planned next pass
        granted.update(intent.locks)
        chosen.append(intent)
    values = {
        "state": DeploymentState.DEPLOYING.value,
        "updated_at": now,
        "started_at": func.coalesce(Deployment.started_at, now),
    }
    started = _compare_and_set(session, [i.deployment_id for i in chosen], NOT_STARTED, values)
    for intent in chosen:
        row = started.get(intent.deployment_id)
        if row is None:
            continue
        session.add_all(Lock(name=name, deployment_id=row.id, acquired_at=now) for name in intent.locks)
        session.add(
            Step(
                deployment_id=row.id,
                kind=StepKind.DEPLOY.value,
                name="deploy",
                state=StepState.QUEUED.value,
                due_at=now,
            )
        )
        deployment_event(
            session, row, "deployment.started", now, f"deploying to {row.environment}", {"locks": list(intent.locks)}
        )
    return [i.deployment_id in started for i in intents]


def promote_all(session: Session, intents: Sequence[Promote], now: datetime) -> list[bool]:
    keys = [i.origin_key for i in intents]
    existing = set(session.scalars(select(Deployment.origin_key).where(Deployment.origin_key.in_(keys))))
    created: dict[str, Deployment] = {}
    applied: list[bool] = []
    for intent in intents:
        applied.append(intent.origin_key not in existing and intent.origin_key not in created)
        if not applied[-1]:
            continue  # already promoted, or twice in this group: once is enough
        created[intent.origin_key] = Deployment(
            release_id=intent.release_id,
            app=intent.app,
            environment=intent.environment,
            state=DeploymentState.PENDING.value,
            origin_key=intent.origin_key,
            queued_at=now,
            updated_at=now,
            created_by=SYSTEM,
            summary=intent.decision.summary if intent.decision else "promoted",
        )
    session.add_all(created.values())
    session.flush()  # one batched INSERT; the ids are needed by the events
    for intent, ok in zip(intents, applied, strict=True):
        if not ok:
            continue
        d = created[intent.origin_key]
        deployment_event(session, d, "deployment.created", now, d.summary)
    return applied
