"""Step leases: the orchestrator's half that owns step status.

Steps are a :class:`~conveyor.store.leased_queue.LeasedQueue` fenced by their ``attempt``: a worker
claims due steps, heartbeats while they run and finishes them; a worker paused or cut off past its
lease finds its late heartbeat or result refused. A reaper puts steps whose lease expired back in the
queue; each run is a row in ``step_attempts``. A step whose workers keep dying is failed after
``MAX_ATTEMPTS`` instead of looping forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from conveyor.domain.model import StepKind, StepState
from conveyor.store.database import Database
from conveyor.store.durations import count_finished
from conveyor.store.events import About, record_event, record_events
from conveyor.store.leased_queue import LeasedQueue
from conveyor.store.step_logs import LogFlush, append_step_logs
from conveyor.store.tables import (
    Deployment,
    Event,
    Release,
    Step,
    StepAttempt,
    among,
    execute_rows,
    insert_rows,
)

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class ClaimedStep:
    step_id: int
    attempt: int
    kind: StepKind
    name: str
    deployment_id: int
    app: str
    environment: str
    release_id: int
    sha: str
    label: str
    lease_expires_at: datetime | None = None  # as of the claim; heartbeats extend the lease later


@dataclass(frozen=True)
class StepResult:
    ok: bool
    outcome: str
    measurements: list[dict[str, Any]]
    result: dict[str, Any]


class Leases:
    def __init__(self, db: Database, clock: Callable[[], datetime], owner: str, lease_seconds: float) -> None:
        self.db, self.clock, self.owner = db, clock, owner
        self.queue = LeasedQueue(
            Step,
            owner=owner,
            lease=timedelta(seconds=lease_seconds),
            fencing="attempt",
            held=StepState.RUNNING.value,
            due=lambda now: (Step.state == StepState.QUEUED.value, Step.due_at <= now),
            order_by=(Step.due_at, Step.id),
        )
        # the newest event id before and after the last claim that claimed something: its step.started
        # events change nothing a planner pass would see, so a plan settled before it is settled after
        self.claim_events: tuple[int, int] | None = None

    def anything_due(self) -> bool:
        """A cheap read, so an idle worker does not open a write transaction on every tick."""
        with self.db.peek() as conn:
            return self.queue.any_due(conn, self.clock())

    def claim(self, limit: int) -> list[ClaimedStep]:
        if limit <= 0 or not self.anything_due():
            return []
        claimed: list[ClaimedStep] = []
        abandoned: list[tuple[str, datetime | None, datetime]] = []
        with self.db.write() as session:
            now = self.clock()
            events_before = session.scalar(select(func.max(Event.id))) or 0
            due = self.queue.lock_due_rows(session, now, limit, Step.deployment_id, Step.kind, Step.name)
            places = _places(session, {s.deployment_id for s in due})
            taken: list[tuple[int, int]] = []
            for step_id, attempt, deployment_id, kind, name in due:
                d = places.get(deployment_id)
                if d is None or d.cancel_requested_at is not None:
                    continue  # a cancelled deployment's queued steps are cancelled by the orchestrator
                if attempt >= MAX_ATTEMPTS:
                    step = session.get_one(Step, step_id)
                    self._give_up(session, step, d, now)
                    abandoned.append((step.kind, step.started_at, now))
                    continue
                taken.append((step_id, attempt))
                claimed.append(
                    ClaimedStep(
                        step_id,
                        attempt + 1,
                        StepKind(kind),
                        name,
                        d.id,
                        d.app,
                        d.environment,
                        d.release_id,
                        d.sha,
                        d.label,
                    )
                )
            expires = self.queue.take_all(session, taken, now, first_taken="started_at")
            claimed = [replace(c, lease_expires_at=expires) for c in claimed]
            if claimed:
                attempts = [
                    {"step_id": c.step_id, "attempt": c.attempt, "owner": self.owner, "started_at": now}
                    for c in claimed
                ]
                insert_rows(session, cast(Table, StepAttempt.__table__), attempts)
                about = [
                    About(
                        f"{c.kind} {c.name}",
                        c.app,
                        c.environment,
                        c.release_id,
                        c.deployment_id,
                        {"step_id": c.step_id, "attempt": c.attempt},
                    )
                    for c in claimed
                ]
                record_events(session, "step.started", at=now, actor=self.owner, about=about)
                self.claim_events = (events_before, session.scalar(select(func.max(Event.id))) or 0)
            count_finished(session, abandoned)  # last, like every writer of those counters
        return claimed

    def _give_up(self, session: Session, step: Step, d: Any, now: datetime) -> None:
        step.state = StepState.FAILED.value
        step.finished_at = now
        step.outcome = f"gave up after {step.attempt} attempts: the worker running it was lost each time"
        record_event(
            session,
            "step.abandoned",
            at=now,
            actor=self.owner,
            app=d.app,
            environment=d.environment,
            release_id=d.release_id,
            deployment_id=d.id,
            message=step.outcome,
            payload={"step_id": step.id},
        )

    def heartbeat(self, running: Iterable[tuple[int, int]], logs: Mapping[int, LogFlush]) -> set[int]:
        """Extend the leases of our running steps and append their new log chunks.

        Returns the ids of steps we no longer own (reaped after a pause, or cancelled): their work must stop.
        """
        running = list(running)
        with self.db.write() as session:
            lost = self.queue.extend(session, running, self.clock())
            # a run that lost its lease (its worker was paused past it) still ran: what it printed is kept,
            # under its own attempt, beside the new attempt's
            append_step_logs(session, [(i, n, f) for i, n in running if (f := logs.get(i))])
            # an operator cancelled their deployment: stop them too (the lease is kept while they wind down)
            cancelled = select(Step.id).where(among(Step.id, [i for i, _ in running]), Step.cancel_requested.is_(True))
            lost.update(session.scalars(cancelled))
        return lost

    def finish(self, claimed: ClaimedStep, result: StepResult, log_tail: LogFlush | None = None) -> bool:
        """Record one step's result; refused (False) when its attempt no longer holds the lease."""
        return self.finish_claimed([(claimed, result, log_tail or LogFlush())])[0]

    def finish_claimed(self, items: Sequence[tuple[ClaimedStep, StepResult, LogFlush]]) -> list[bool]:
        """Record many results in one transaction, each fenced like :meth:`finish`: refused when its
        attempt no longer holds the lease. The rows still ours are read (and, on PostgreSQL, locked)
        first, then all of them are written with one statement per table."""
        if not items:
            return []
        with self.db.write() as session:
            now = self.clock()
            held = [(c.step_id, c.attempt) for c, _, _ in items]
            ours = self.queue.lock_held(session, held, Step.started_at, Step.cancel_requested)
            accepted: list[bool] = []
            done: list[tuple[ClaimedStep, StepResult, LogFlush]] = []
            rows: list[Any] = []
            for item in items:
                # one result per attempt: a second in the same batch (an abandoned run's, right behind its
                # verdict) is refused like one arriving after the first was stored
                row = ours.get(item[0].step_id)
                accepted.append(row is not None and row.attempt == item[0].attempt)
                if accepted[-1]:
                    done.append(item)
                    rows.append(ours.pop(item[0].step_id))
            # a refused result's run still ran: its last lines are kept under its attempt, as its earlier ones were
            refused = [(c.step_id, c.attempt, tail) for (c, _, tail), ok in zip(items, accepted, strict=True) if not ok]
            append_step_logs(session, refused)
            if done:
                cancelled = {c.step_id for (c, _, _), row in zip(done, rows, strict=True) if row.cancel_requested}
                self._write_results(session, done, now, cancelled)
                count_finished(
                    session, [(c.kind.value, row.started_at, now) for (c, _, _), row in zip(done, rows, strict=True)]
                )
        return accepted

    def _write_results(
        self,
        session: Session,
        done: list[tuple[ClaimedStep, StepResult, LogFlush]],
        now: datetime,
        cancelled: set[int],
    ) -> None:
        def state(c: ClaimedStep, result: StepResult) -> str:
            if c.step_id in cancelled and not result.ok:
                return StepState.CANCELLED.value  # stopped because its deployment was cancelled
            return (StepState.SUCCEEDED if result.ok else StepState.FAILED).value

        execute_rows(
            session,
            FINISH_STEP,
            [
                {
                    "b_id": c.step_id,
                    "b_state": state(c, r),
                    "b_at": now,
                    "b_outcome": r.outcome,
                    "b_measurements": r.measurements,
                    "b_result": r.result,
                }
                for c, r, _ in done
            ],
        )
        append_step_logs(session, [(c.step_id, c.attempt, tail) for c, _, tail in done])
        execute_rows(
            session,
            FINISH_ATTEMPT,
            [{"sid": c.step_id, "n": c.attempt, "at": now, "out": state(c, r)} for c, r, _ in done],
        )
        about = [
            About(
                f"{c.kind} {c.name}: {r.outcome}",
                c.app,
                c.environment,
                c.release_id,
                c.deployment_id,
                {"step_id": c.step_id, "attempt": c.attempt, "ok": r.ok},
            )
            for c, r, _ in done
        ]
        record_events(session, "step.finished", at=now, actor=self.owner, about=about)
        timed_out = [a for a, (_, r, _) in zip(about, done, strict=True) if r.result.get("timed_out")]
        record_events(session, "step.timed_out", at=now, actor=self.owner, about=timed_out)

    def _close_attempt(self, session: Session, step_id: int, attempt: int, outcome: str, now: datetime) -> None:
        session.execute(
            update(StepAttempt)
            .where(StepAttempt.step_id == step_id, StepAttempt.attempt == attempt)
            .values(finished_at=now, outcome=outcome)
        )

    def release(self, running: Iterable[tuple[int, int]]) -> None:
        """Hand our running steps back to the queue at once (graceful shutdown past its grace period)."""
        with self.db.write() as session:
            now = self.clock()
            held = dict(running)
            back = Step.cancel_requested.is_(False)  # the reaper ends cancelled ones
            for step_id in self.queue.hand_back(session, held.items(), back, state=StepState.QUEUED.value, due_at=now):
                self._close_attempt(session, step_id, held[step_id], "released", now)
                d = session.scalars(select(Deployment).join(Step).where(Step.id == step_id)).one()
                record_event(
                    session,
                    "step.released",
                    at=now,
                    actor=self.owner,
                    app=d.app,
                    environment=d.environment,
                    deployment_id=d.id,
                    message="handed back to the queue on shutdown",
                    payload={"step_id": step_id, "attempt": held[step_id]},
                )

    def reap(self, limit: int = 100) -> int:
        """Re-queue steps whose lease expired: their worker died or stalled (cancelled ones end instead)."""
        with self.db.write() as session:
            now = self.clock()
            expired = self.queue.lock_expired(session, now, limit)
            for step in expired:
                self._close_attempt(session, step.id, step.attempt, "expired", now)
                d = session.get(Deployment, step.deployment_id)
                if step.cancel_requested:  # cancelled while its holder died: end it, never run it again
                    step.state, step.finished_at = StepState.CANCELLED.value, now
                    step.outcome = "cancelled: its deployment was cancelled and its worker was lost"
                    step.lease_owner = step.lease_expires_at = None
                    continue
                record_event(
                    session,
                    "step.requeued",
                    at=now,
                    actor=self.owner,
                    app=d.app if d else None,
                    environment=d.environment if d else None,
                    deployment_id=step.deployment_id,
                    message=f"lease of {step.lease_owner} expired; the {step.name} step will run again",
                    payload={"step_id": step.id, "attempt": step.attempt, "owner": step.lease_owner},
                )
                step.state, step.due_at = StepState.QUEUED.value, now
                step.lease_owner = step.lease_expires_at = None
            return len(expired)


STEPS = cast(Table, Step.__table__)
# one executemany on the table for a batch of results (the ORM's bulk UPDATE did more for each row)
FINISH_STEP = (
    update(STEPS)
    .where(STEPS.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        finished_at=bindparam("b_at", type_=STEPS.c.finished_at.type),
        outcome=bindparam("b_outcome"),
        lease_owner=None,
        lease_expires_at=None,
        measurements=bindparam("b_measurements", type_=STEPS.c.measurements.type),
        result=bindparam("b_result", type_=STEPS.c.result.type),
    )
)


ATTEMPTS = cast(Table, StepAttempt.__table__)
FINISH_ATTEMPT = (
    update(ATTEMPTS)
    .where(ATTEMPTS.c.step_id == bindparam("sid"), ATTEMPTS.c.attempt == bindparam("n"))
    .values(finished_at=bindparam("at", type_=ATTEMPTS.c.finished_at.type), outcome=bindparam("out"))
)


def _places(session: Session, ids: set[int]) -> dict[int, Any]:
    """For each deployment in ``ids``: where it goes, its release's SHA and label, and whether it is
    being cancelled (what a claim needs), in one query."""
    if not ids:
        return {}
    rows = session.execute(
        select(
            Deployment.id,
            Deployment.app,
            Deployment.environment,
            Deployment.release_id,
            Deployment.cancel_requested_at,
            Release.sha,
            Release.label,
        )
        .join(Release, Release.id == Deployment.release_id)
        .where(among(Deployment.id, ids))
    )
    return {row.id: row for row in rows}
