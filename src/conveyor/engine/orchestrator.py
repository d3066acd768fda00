"""The orchestrator: the one writer of deployment status.

Each intent is applied in its own transaction: the rows are locked (``BEGIN IMMEDIATE`` on SQLite,
``SELECT ... FOR UPDATE`` on PostgreSQL), the precondition is checked again (the planner may have
looked at a stale snapshot, or another process may have acted first), and the new state, its Event and
its Decision are written together. A precondition that no longer holds makes the intent a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from conveyor.domain.decisions import (
    Bake,
    Cancel,
    CancelSteps,
    Fail,
    Intent,
    Note,
    Promote,
    RepeatChecks,
    Start,
    Succeed,
    Supersede,
    Verify,
    Wait,
)
from conveyor.domain.model import DeploymentState, Health, HoldKind, StepKind, StepState
from conveyor.engine import placements, transitions
from conveyor.engine.controls import queue_rollback
from conveyor.store.database import Database
from conveyor.store.durations import count_ended
from conveyor.store.events import deployment_event, lift_hold, raise_hold, record_decisions
from conveyor.store.tables import Deployment, Hold, Lock, Release, Step, among

log = logging.getLogger(__name__)

NOT_STARTED = (DeploymentState.PENDING.value, DeploymentState.WAITING.value)
ACTIVE = (DeploymentState.DEPLOYING.value, DeploymentState.VERIFYING.value, DeploymentState.BAKING.value)
SYSTEM = "conveyor"
# Intents per transaction. Each transaction costs its own sealing of events, commit and connection; a
# pass that starts a thousand deployments spent twice the CPU in batches of 50 that it does in batches
# of 500. Larger batches hold SQLite's one writer (and PostgreSQL's row locks) longer: 500 set-based
# intents take tens of milliseconds.
BATCH_SIZE = 500


class Orchestrator:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    # -- intents from the planner ---------------------------------------------------------------

    def apply(self, intent: Intent) -> bool:
        """Apply one intent in one transaction; False when its precondition no longer held."""
        return self.apply_all([intent])[0]

    def apply_all(
        self,
        intents: Sequence[Intent],
        *,
        committed: Callable[[Sequence[Intent], list[bool]], None] | None = None,
    ) -> list[bool]:
        """Apply a plan's intents, each atomically on its own (a savepoint), committed in batches.

        Each intent either happens whole (state, Event and Decision together) or not at all; one whose
        precondition no longer holds, that loses a race, or that hits a bug is skipped and re-planned,
        without undoing the others. Batching saves a transaction per intent when a pass starts or
        finishes a hundred deployments at once. ``committed`` is called after each batch's commit with
        the batch and what became of each of its intents.
        """
        results: list[bool] = []
        for start in range(0, len(intents), BATCH_SIZE):
            batch = intents[start : start + BATCH_SIZE]
            with self.db.write() as session:
                now = self.clock()
                for group in _runs_of_one_type(batch):
                    results.extend(self._apply_group(session, group, now))
            if committed is not None:
                committed(batch, results[start:])
        return results

    def _apply_group(self, session: Session, group: Sequence[Intent], now: datetime) -> list[bool]:
        """Intents of one type: set-based when there is a bulk handler and more than one of them; should
        that fail, undone and applied one at a time, so each still happens whole or not at all. The starts
        that promotions carry follow them, as a group of their own."""
        applied = self._apply_run(session, group, now)
        if isinstance(group[0], Promote):
            self._start_promoted(session, cast(Sequence[Promote], group), applied, now)
        return applied

    def _start_promoted(self, session: Session, group: Sequence[Promote], applied: list[bool], now: datetime) -> None:
        """Start the deployments just created by promotions that carry their start. A start refused here
        (a hold or lock taken since the plan) leaves its deployment pending: the next pass, which reads
        its app again, judges it like any other."""
        then = {i.origin_key: i.then_start for i, ok in zip(group, applied, strict=True) if ok and i.then_start}
        if not then:
            return
        created = session.execute(
            select(Deployment.origin_key, Deployment.id).where(among(Deployment.origin_key, then))
        ).all()
        starts = sorted(
            (start.of(id_) for key, id_ in created if key is not None and (start := then.get(key)) is not None),
            key=lambda s: s.deployment_id,
        )
        if starts:
            self._apply_run(session, starts, now)

    def _apply_run(self, session: Session, group: Sequence[Intent], now: datetime) -> list[bool]:
        handler = _BULK.get(type(group[0]))
        if handler is not None and len(group) > 1:
            try:
                with session.begin_nested():
                    applied = handler(session, group, now)
                    if not isinstance(group[0], Note):  # a Note is its decision: recorded by its handler
                        news = [i.decision for i, ok in zip(group, applied, strict=True) if ok and i.decision]
                        record_decisions(session, news, now)
                    return applied
            except IntegrityError:
                log.debug("bulk %s lost a race; applying one at a time", type(group[0]).__name__, exc_info=True)
            except Exception:
                log.warning("bulk %s failed; applying one at a time", type(group[0]).__name__, exc_info=True)
        return [self._apply_one(session, intent, now) for intent in group]

    def _apply_one(self, session: Session, intent: Intent, now: datetime) -> bool:
        handler = _HANDLERS[type(intent)]
        try:
            with session.begin_nested():
                applied = handler(self, session, intent, now)
                if applied and intent.decision is not None and not isinstance(intent, Note):
                    # the intent changed state, so its decision is news: no need to compare with the last
                    record_decisions(session, [intent.decision], now)
                return applied
        except IntegrityError:
            log.debug("intent %r lost a race; it will be re-planned", intent)
        except Exception:
            log.exception("could not apply %r; it will be re-planned", intent)
        return False

    def _lock_deployment(self, session: Session, deployment_id: int) -> Deployment | None:
        stmt = select(Deployment).where(Deployment.id == deployment_id)
        if self.db.is_postgres:
            stmt = stmt.with_for_update()
        return session.scalars(stmt).first()

    def _transition(
        self,
        session: Session,
        deployment_id: int,
        expected: tuple[str, ...],
        new: DeploymentState,
        now: datetime,
    ) -> Deployment | None:
        """Compare-and-set in one statement: the row changes only if it is still in an expected state."""
        values: dict[str, Any] = {"state": new.value, "updated_at": now}
        if new.active:
            values["started_at"] = func.coalesce(Deployment.started_at, now)
        if new.terminal:
            values["finished_at"] = now
        d = session.scalars(
            update(Deployment)
            .where(Deployment.id == deployment_id, Deployment.state.in_(expected))
            .values(**values)
            .returning(Deployment),
            execution_options={"synchronize_session": False},
        ).first()
        if d is not None and new.terminal:
            session.execute(delete(Lock).where(Lock.deployment_id == d.id))
            count_ended(session, [(d.environment, new.value, d.started_at, now)])
        return d

    def _note(self, session: Session, intent: Note, now: datetime) -> bool:
        return transitions.note_all(session, [intent], now)[0]

    def _start(self, session: Session, intent: Start, now: datetime) -> bool:
        return transitions.start_all(session, [intent], now)[0]

    def _wait(self, session: Session, intent: Wait, now: datetime) -> bool:
        d = self._transition(
            session, intent.deployment_id, (DeploymentState.PENDING.value,), DeploymentState.WAITING, now
        )
        if d is None:
            return False
        summary = intent.decision.summary if intent.decision else ""
        d.summary = summary
        deployment_event(session, d, "deployment.waiting", now, summary)
        return True

    def _supersede(self, session: Session, intent: Supersede, now: datetime) -> bool:
        d = self._transition(session, intent.deployment_id, NOT_STARTED, DeploymentState.SUPERSEDED, now)
        if d is None:
            return False
        d.summary = intent.decision.summary if intent.decision else "superseded"
        deployment_event(session, d, "deployment.superseded", now, d.summary, {"by_release": intent.by_release_id})
        return True

    def _verify(self, session: Session, intent: Verify, now: datetime) -> bool:
        d = self._transition(
            session, intent.deployment_id, (DeploymentState.DEPLOYING.value,), DeploymentState.VERIFYING, now
        )
        if d is None:
            return False
        placements.now_current(session, [d], Health.CHECKING, now)  # its deploy step succeeded: it runs
        _queue_checks(session, d.id, intent.checks, now)
        deployment_event(session, d, "deployment.verifying", now, f"checking {', '.join(intent.checks)}")
        return True

    def _bake(self, session: Session, intent: Bake, now: datetime) -> bool:
        d = self._transition(
            session, intent.deployment_id, (DeploymentState.VERIFYING.value,), DeploymentState.BAKING, now
        )
        if d is None:
            return False
        d.baking_since = now
        d.bake_until = now + timedelta(seconds=intent.seconds)
        placements.set_health(session, [d.id], Health.HEALTHY, now)
        if intent.interval < intent.seconds:
            _queue_checks(session, d.id, intent.checks, now + timedelta(seconds=intent.interval))
        minutes = f"{intent.seconds / 60:g}m" if intent.seconds >= 60 else f"{intent.seconds:g}s"
        deployment_event(
            session, d, "deployment.baking", now, f"checks passed; baking for {minutes}, checking again meanwhile"
        )
        return True

    def _repeat_checks(self, session: Session, intent: RepeatChecks, now: datetime) -> bool:
        d = self._lock_deployment(session, intent.deployment_id)
        if d is None or d.state != DeploymentState.BAKING.value or d.cancel_requested_at is not None:
            return False
        open_steps = session.scalar(
            select(func.count())
            .select_from(Step)
            .where(Step.deployment_id == d.id, Step.state.in_([StepState.QUEUED.value, StepState.RUNNING.value]))
        )
        if open_steps:
            return False
        _queue_checks(session, d.id, intent.checks, now + timedelta(seconds=intent.after))
        return True

    def _cancel(self, session: Session, intent: Cancel, now: datetime) -> bool:
        """End a deployment an operator cancelled, once none of its steps runs: its locks go with it."""
        running = session.scalar(
            select(func.count())
            .select_from(Step)
            .where(Step.deployment_id == intent.deployment_id, Step.state == StepState.RUNNING.value)
        )
        if running:
            return False
        d = self._lock_deployment(session, intent.deployment_id)
        if d is None or d.cancel_requested_at is None:
            return False
        d = self._transition(session, intent.deployment_id, ACTIVE, DeploymentState.CANCELLED, now)
        if d is None:
            return False
        deployed = session.scalar(
            select(func.count())
            .select_from(Step)
            .where(
                Step.deployment_id == d.id,
                Step.kind == StepKind.DEPLOY.value,
                Step.state == StepState.SUCCEEDED.value,
            )
        )
        if deployed:  # it runs, but its checks never finished
            placements.now_current(session, [d], Health.UNKNOWN, now)
        d.summary = d.summary.removeprefix("cancelling: ") or "cancelled"
        deployment_event(session, d, "deployment.cancelled", now, d.summary)
        return True

    def _succeed(self, session: Session, intent: Succeed, now: datetime) -> bool:
        return transitions.succeed_all(session, [intent], now)[0]

    def _fail(self, session: Session, intent: Fail, now: datetime) -> bool:
        d = self._transition(session, intent.deployment_id, ACTIVE, DeploymentState.FAILED, now)
        if d is None:
            return False
        d.summary = intent.summary
        d.evidence = intent.evidence
        session.execute(
            update(Step)
            .where(Step.deployment_id == d.id, Step.state == StepState.QUEUED.value)
            .values(state=StepState.CANCELLED.value, finished_at=now, outcome="cancelled: deployment failed")
        )
        deployment_event(session, d, "deployment.failed", now, intent.summary, intent.evidence)
        placements.set_health(session, [d.id], Health.FAILING, now)  # only where it is current: it runs
        if intent.previous_stopped:
            placements.stopped(session, d.app, d.environment, now)
        older = session.scalars(
            select(Hold).where(
                Hold.kind == HoldKind.BLOCK.value,
                Hold.app == d.app,
                Hold.environment == d.environment,
                Hold.lifted_at.is_(None),
            )
        ).all()
        for hold in older:
            lift_hold(session, hold, now, SYSTEM, "replaced by a newer failure")
        block = Hold(
            kind=HoldKind.BLOCK.value,
            app=d.app,
            environment=d.environment,
            release_id=d.release_id,
            deployment_id=d.id,
            reason=intent.summary,
            actor=SYSTEM,
            since=now,
            evidence=intent.evidence,
        )
        raise_hold(session, block, intent.summary)
        if intent.rollback_to_release_id is not None:
            self._roll_back_after_failure(session, d, intent, now)
        return True

    def _roll_back_after_failure(self, session: Session, d: Deployment, intent: Fail, now: datetime) -> None:
        """``on_failure: rollback``: the last good release goes back at once, the failed one is vetoed."""
        to = session.get(Release, intent.rollback_to_release_id)
        failed = session.get(Release, d.release_id)
        if to is None or failed is None:
            return
        queue_rollback(
            session,
            app=d.app,
            environment=d.environment,
            to=to,
            from_release=failed,
            actor=SYSTEM,
            reason=f"on_failure: rollback after {failed.label} failed its checks",
            now=now,
        )

    def _cancel_steps(self, session: Session, intent: CancelSteps, now: datetime) -> bool:
        d = self._lock_deployment(session, intent.deployment_id)
        if d is None:
            return False
        why = "its deployment was cancelled" if d.cancel_requested_at is not None else "a sibling check failed"
        cancelled = session.execute(
            update(Step)
            .where(Step.id.in_(intent.step_ids), Step.state == StepState.QUEUED.value)
            .values(state=StepState.CANCELLED.value, finished_at=now, outcome=f"cancelled: {why}")
        )
        stopping = session.execute(  # their holders stop them at their next heartbeat
            update(Step)
            .where(Step.id.in_(intent.stop), Step.state == StepState.RUNNING.value, Step.cancel_requested.is_(False))
            .values(cancel_requested=True)
        )
        queued, running = (int(getattr(r, "rowcount", 0) or 0) for r in (cancelled, stopping))
        if queued:
            deployment_event(session, d, "step.cancelled", now, why, {"step_ids": list(intent.step_ids)})
        if running:
            deployment_event(session, d, "step.stopping", now, why, {"step_ids": list(intent.stop)})
        return bool(queued or running)

    def _promote(self, session: Session, intent: Promote, now: datetime) -> bool:
        return transitions.promote_all(session, [intent], now)[0]


_BULK: dict[type[Intent], Callable[[Session, Any, datetime], list[bool]]] = {
    Note: transitions.note_all,
    Start: transitions.start_all,
    Succeed: transitions.succeed_all,
    Promote: transitions.promote_all,
}


def _runs_of_one_type(intents: Sequence[Intent]) -> list[list[Intent]]:
    """Consecutive intents of the same type, in plan order (the order matters: a Succeed before a Start)."""
    runs: list[list[Intent]] = []
    for intent in intents:
        if runs and type(runs[-1][0]) is type(intent):
            runs[-1].append(intent)
        else:
            runs.append([intent])
    return runs


_HANDLERS: dict[type[Intent], Callable[[Orchestrator, Session, Any, datetime], bool]] = {
    Note: Orchestrator._note,
    Start: Orchestrator._start,
    Wait: Orchestrator._wait,
    Supersede: Orchestrator._supersede,
    Verify: Orchestrator._verify,
    Succeed: Orchestrator._succeed,
    Fail: Orchestrator._fail,
    CancelSteps: Orchestrator._cancel_steps,
    Promote: Orchestrator._promote,
    Bake: Orchestrator._bake,
    RepeatChecks: Orchestrator._repeat_checks,
    Cancel: Orchestrator._cancel,
}


def _queue_checks(session: Session, deployment_id: int, checks: tuple[str, ...], due_at: datetime) -> None:
    for name in checks:
        session.add(
            Step(
                deployment_id=deployment_id,
                kind=StepKind.CHECK.value,
                name=name,
                state=StepState.QUEUED.value,
                due_at=due_at,
            )
        )
