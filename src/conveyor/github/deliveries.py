"""The intake queue: GitHub webhook deliveries as the request recorded them, worked on by the conductor.

The request verifies the signature and records the raw body (:func:`record_delivery`); nothing else. A
delivery whose ``X-GitHub-Delivery`` is already recorded is a redelivery and changes nothing. Deliveries
of events conveyor uses are ``pending``; a conductor's intake chore claims them under a lease
(:class:`~conveyor.store.leased_queue.LeasedQueue`, fenced by ``attempts``), so a worker that dies while
working on one leaves it to the next claimer. A delivery that fails is tried again with a growing delay,
and is ``failed`` after :data:`MAX_ATTEMPTS`. ``ping`` is ``done`` at once; events conveyor does not use
are ``ignored`` at once, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, defer

from conveyor.config.resolved import Config
from conveyor.errors import OperationError
from conveyor.github.payloads import NO_SUBJECT, Subject
from conveyor.store.database import Database, dialect_insert
from conveyor.store.leased_queue import LeasedQueue
from conveyor.store.tables import GitHubDelivery

PENDING, DONE, IGNORED, FAILED = "pending", "done", "ignored", "failed"
USED_EVENTS = frozenset({"push", "check_run", "check_suite", "status", "workflow_run"})
MAX_ATTEMPTS = 5
MAX_NOTE = 2000


def first_state(event: str) -> tuple[str, str]:
    """The state and note a delivery of ``event`` is recorded with."""
    if event == "ping":
        return DONE, "ping: the webhook reaches conveyor"
    if event in USED_EVENTS:
        return PENDING, ""
    return IGNORED, f"conveyor does not use {event!r} events"


def record_delivery(db: Database, delivery_id: str, event: str, body: bytes, now: datetime) -> bool:
    """Record one verified delivery; False when it was recorded before (a redelivery). One statement:
    ``INSERT ... ON CONFLICT DO NOTHING`` on the delivery id, so two copies racing in store one."""
    state, note = first_state(event)
    row = {
        "delivery_id": delivery_id,
        "event": event,
        "body": body.decode("utf-8", errors="replace"),
        "received_at": now,
        "state": state,
        "note": note,
        "attempts": 0,
        "next_attempt_at": now,
        "finished_at": None if state == PENDING else now,
    }
    with db.write() as session:
        stmt = (
            dialect_insert(session, GitHubDelivery).values(**row).on_conflict_do_nothing(index_elements=["delivery_id"])
        )
        return bool(getattr(session.execute(stmt), "rowcount", 0))


@dataclass(frozen=True)
class ClaimedDelivery:
    row_id: int
    attempt: int
    delivery_id: str
    event: str
    body: str


class DeliveryQueue:
    def __init__(
        self, db: Database, *, owner: str, clock: Callable[[], datetime], lease_seconds: float = 120.0
    ) -> None:
        self.db, self.clock = db, clock
        self.queue = LeasedQueue(
            GitHubDelivery,
            owner=owner,
            lease=timedelta(seconds=lease_seconds),
            fencing="attempts",
            held=PENDING,
            due=lambda now: (
                GitHubDelivery.state == PENDING,
                GitHubDelivery.next_attempt_at <= now,
                or_(GitHubDelivery.lease_expires_at.is_(None), GitHubDelivery.lease_expires_at < now),
            ),
        )

    def claim(self, limit: int = 50) -> list[ClaimedDelivery]:
        """Up to ``limit`` due deliveries, oldest first, leased to this owner."""
        now = self.clock()
        with self.db.read() as session:
            if not self.queue.any_due(session, now):
                return []
        with self.db.write() as session:
            rows = self.queue.lock_due(session, now, limit)
            for row in rows:
                self.queue.take(row, now)
            return [ClaimedDelivery(r.id, r.attempts, r.delivery_id, r.event, r.body) for r in rows]

    def finish(self, claimed: ClaimedDelivery, state: str, note: str, subject: Subject = NO_SUBJECT) -> bool:
        """Record the outcome; False when the lease was lost (another worker has it now)."""
        return bool(self.finish_all([(claimed, state, note, subject)]))

    def finish_all(self, outcomes: list[tuple[ClaimedDelivery, str, str, Subject]]) -> int:
        """Record several outcomes in one transaction, with what each delivery was about
        (:func:`conveyor.github.payloads.about`); returns how many were still ours."""
        if not outcomes:
            return 0
        now = self.clock()
        with self.db.write() as session:
            return sum(
                len(
                    self.queue.hand_back(
                        session,
                        [(c.row_id, c.attempt)],
                        state=state,
                        note=note[:MAX_NOTE],
                        finished_at=now,
                        **_columns(subject),
                    )
                )
                for c, state, note, subject in outcomes
            )

    def retry(self, claimed: ClaimedDelivery, error: str, subject: Subject = NO_SUBJECT) -> None:
        """Try again later, or give up after :data:`MAX_ATTEMPTS`."""
        if claimed.attempt >= MAX_ATTEMPTS:
            self.finish(claimed, FAILED, f"gave up after {claimed.attempt} attempts: {error}", subject)
            return
        later = self.clock() + timedelta(seconds=min(300.0, 2.0**claimed.attempt))
        with self.db.write() as session:
            self.queue.hand_back(
                session,
                [(claimed.row_id, claimed.attempt)],
                note=error[:MAX_NOTE],
                next_attempt_at=later,
                **_columns(subject),
            )


def _columns(subject: Subject) -> dict[str, str | None]:
    repository, branch, sha = subject
    return {"repository": repository, "branch": branch, "sha": sha}


def delivery_json(row: GitHubDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "delivery_id": row.delivery_id,
        "event": row.event,
        "received_at": row.received_at.isoformat(),
        "state": row.state,
        "note": row.note,
        "attempts": row.attempts,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "repository": row.repository,
        "branch": row.branch,
        "sha": row.sha,
    }


def recent_deliveries(
    session: Session, *, repository: str | None = None, state: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Deliveries newest first (``GitHub's Recent deliveries``, with what conveyor made of each)."""
    query = select(GitHubDelivery).order_by(GitHubDelivery.id.desc()).limit(limit)
    if repository is not None:
        query = query.where(GitHubDelivery.repository == repository.lower())
    if state is not None:
        query = query.where(GitHubDelivery.state == state)
    return [delivery_json(row) for row in session.scalars(query.options(defer(GitHubDelivery.body)))]


def push_news(session: Session, repository: str, branch: str, since: datetime | None) -> dict[str, Any] | None:
    """What ``why`` says about an app's pushes, or None when there is nothing to say: the newest push to
    its branch, when conveyor ignored it or gave up on it after ``since`` (the app's newest release); or,
    when no push to its branch ever came while pushes to other branches of its repository did, the newest
    of those (the app probably follows the wrong branch)."""
    pushes = (
        select(GitHubDelivery)
        .where(GitHubDelivery.repository == repository.lower(), GitHubDelivery.event == "push")
        .order_by(GitHubDelivery.id.desc())
        .limit(1)
        .options(defer(GitHubDelivery.body))
    )
    mine = session.scalars(pushes.where(GitHubDelivery.branch == branch)).first()
    if mine is not None:
        if mine.state not in (IGNORED, FAILED) or (since is not None and mine.received_at <= since):
            return None
        summary = f"push of {(mine.sha or '?')[:7]} to {branch} {mine.state}: {mine.note}"
        return {"summary": summary, "delivery": delivery_json(mine)}
    other = session.scalars(pushes).first()
    if other is None:
        return None
    summary = (
        f"no push to {branch} has come from GitHub; the newest push to {repository} was to {other.branch} "
        f"({other.state}: {other.note}); is {branch!r} the branch to follow?"
    )
    return {"summary": summary, "delivery": delivery_json(other)}


STATES = (PENDING, DONE, IGNORED, FAILED)


def deliveries_for(
    db: Database, config: Config, app: str | None = None, state: str | None = None, limit: int = 50
) -> dict[str, Any]:
    """What ``conveyor deliveries`` and ``GET /api/github/deliveries`` answer: the newest deliveries, of
    the repository ``app`` follows when given."""
    repository = None
    if app is not None:
        followed = config.app(app).github
        if not followed:
            raise OperationError(
                f"{app} does not follow a GitHub repository: GitHub sends nothing about it", "conflict"
            )
        repository = followed
    if state is not None and state not in STATES:
        raise OperationError(f"unknown delivery state {state!r} (known: {', '.join(STATES)})")
    with db.read() as session:
        return {"deliveries": recent_deliveries(session, repository=repository, state=state, limit=limit)}
