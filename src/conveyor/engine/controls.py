"""The writes behind an operator's controls that change deployments: rollback (with its veto) and cancel.

They live in the engine because only the orchestrator changes a deployment's or a step's status; the
operations layer (and ``on_failure: rollback``, from the orchestrator itself) calls them inside its own
transaction, so the change, its Event and its Decision commit together.

- **rollback**: a new deployment of an older release with override ``rollback`` (it passes the holds of
  its environment, never a lock), and a **veto** of the release rolled back from: a ``veto`` hold on
  (app, environment, release), so that release is never started there again automatically.
- **cancel**: a pending or waiting deployment ends ``cancelled`` at once. A running one is marked in the
  database (``deployments.cancel_requested_at``, ``steps.cancel_requested``): whichever worker holds its
  step sees that at its next heartbeat and stops the driver; the step ends ``cancelled``; the planner then
  ends the deployment and frees its locks, only once no step of it runs (so two deployments sharing a lock
  never overlap). If the holder died, the reaper ends the step ``cancelled`` instead of re-queueing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from conveyor.domain.audit import OperatorAction
from conveyor.domain.decisions import Decision
from conveyor.domain.model import DeploymentState, HoldKind, Override, StepState, Verdict
from conveyor.engine.deployments import create_deployment
from conveyor.store.events import lift_hold, raise_hold, record_decisions, record_event
from conveyor.store.tables import Deployment, Hold, Release, Step

NOT_STARTED = (DeploymentState.PENDING.value, DeploymentState.WAITING.value)
ACTIVE = (DeploymentState.DEPLOYING.value, DeploymentState.VERIFYING.value, DeploymentState.BAKING.value)


def queue_rollback(
    session: Session,
    *,
    app: str,
    environment: str,
    to: Release,
    from_release: Release,
    actor: str,
    reason: str,
    now: datetime,
    action: OperatorAction | None = None,
) -> Deployment:
    """Queue a rollback of ``app`` in ``environment`` from ``from_release`` to ``to`` and veto the former;
    ``action`` when an operator asked for it (an automatic rollback after a failure has none)."""
    message = f"{actor} rolled {app} back in {environment} from {from_release.label} to {to.label}: {reason}"
    d = create_deployment(
        session,
        release_id=to.id,
        app=app,
        environment=environment,
        now=now,
        actor=actor,
        origin_key=None,
        message=message,
        override=Override.ROLLBACK,
    )
    for old in _open_vetoes(session, app, environment, to.id):  # going back to it on purpose lifts its veto
        lift_hold(session, old, now, actor, f"rolled back to {to.label}")
    if from_release.id != to.id and not _open_vetoes(session, app, environment, from_release.id):
        veto = Hold(
            kind=HoldKind.VETO.value,
            app=app,
            environment=environment,
            release_id=from_release.id,
            deployment_id=d.id,
            reason=reason,
            actor=actor,
            since=now,
            evidence={"rollback_deployment": d.id, "rolled_back_to": to.label},
        )
        raise_hold(session, veto, f"{from_release.label} vetoed in {environment}: rolled back ({reason})")
    record_event(
        session,
        "rollback.queued",
        at=now,
        actor=actor,
        message=message,
        app=app,
        environment=environment,
        release_id=to.id,
        deployment_id=d.id,
        payload={"from": from_release.label, "to": to.label, "reason": reason},
        action=action,
        reason=reason if action else None,
    )
    decision = Decision(
        app,
        environment,
        Verdict.PROCEED,
        "RollbackByOperator" if actor != "conveyor" else "RollbackOnFailure",
        message,
        reasons=(reason,),
        evidence={"from": from_release.label, "to": to.label, "actor": actor},
        deployment_id=d.id,
        release_id=to.id,
    )
    record_decisions(session, [decision], now)
    return d


def _open_vetoes(session: Session, app: str, environment: str, release_id: int) -> list[Hold]:
    return list(
        session.scalars(
            select(Hold).where(
                Hold.kind == HoldKind.VETO.value,
                Hold.app == app,
                Hold.environment == environment,
                Hold.release_id == release_id,
                Hold.lifted_at.is_(None),
            )
        )
    )


def cancel(
    session: Session,
    deployments: Sequence[Deployment],
    *,
    actor: str,
    reason: str,
    now: datetime,
    action: OperatorAction | None = None,
) -> None:
    """Cancel ``deployments`` (open ones, read in this transaction): not started ones end at once; running
    ones are asked to stop (see the module docstring). ``action`` when an operator asked for it."""
    for d in deployments:
        message = f"{actor} cancelled deployment #{d.id}: {reason}"
        if d.state in NOT_STARTED:
            ended = session.execute(
                update(Deployment)
                .where(Deployment.id == d.id, Deployment.state.in_(NOT_STARTED))
                .values(state=DeploymentState.CANCELLED.value, updated_at=now, finished_at=now, summary=message),
                execution_options={"synchronize_session": False},
            )
            if not getattr(ended, "rowcount", 0):
                continue
            record_event(
                session,
                "deployment.cancelled",
                at=now,
                actor=actor,
                message=message,
                app=d.app,
                environment=d.environment,
                release_id=d.release_id,
                deployment_id=d.id,
                payload={"reason": reason},
                action=action,
                reason=reason if action else None,
            )
        elif d.state in ACTIVE:
            session.execute(
                update(Deployment)
                .where(Deployment.id == d.id, Deployment.cancel_requested_at.is_(None))
                .values(cancel_requested_at=now, updated_at=now, summary=f"cancelling: {message}"),
                execution_options={"synchronize_session": False},
            )
            session.execute(
                update(Step)
                .where(Step.deployment_id == d.id, Step.state == StepState.QUEUED.value)
                .values(
                    state=StepState.CANCELLED.value, finished_at=now, outcome="cancelled: its deployment was cancelled"
                )
            )
            session.execute(
                update(Step)
                .where(Step.deployment_id == d.id, Step.state == StepState.RUNNING.value)
                .values(cancel_requested=True)
            )
            record_event(
                session,
                "cancel.requested",
                at=now,
                actor=actor,
                message=f"{message} (its running step stops at its worker's next heartbeat)",
                app=d.app,
                environment=d.environment,
                release_id=d.release_id,
                deployment_id=d.id,
                payload={"reason": reason},
                action=action,
                reason=reason if action else None,
            )
        else:
            continue
        decision = Decision(
            d.app,
            d.environment,
            Verdict.SKIP,
            "CancelledByOperator",
            message,
            reasons=(reason,),
            evidence={"actor": actor, "state": d.state},
            deployment_id=d.id,
            release_id=d.release_id,
        )
        record_decisions(session, [decision], now)
