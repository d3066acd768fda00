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

from sqlalchemy import or_

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

    def finish(self, claimed: ClaimedDelivery, state: str, note: str) -> bool:
        """Record the outcome; False when the lease was lost (another worker has it now)."""
        return bool(self.finish_all([(claimed, state, note)]))

    def finish_all(self, outcomes: list[tuple[ClaimedDelivery, str, str]]) -> int:
        """Record several outcomes in one transaction; returns how many were still ours."""
        if not outcomes:
            return 0
        now = self.clock()
        with self.db.write() as session:
            return sum(
                len(
                    self.queue.hand_back(
                        session, [(c.row_id, c.attempt)], state=state, note=note[:MAX_NOTE], finished_at=now
                    )
                )
                for c, state, note in outcomes
            )

    def retry(self, claimed: ClaimedDelivery, error: str) -> None:
        """Try again later, or give up after :data:`MAX_ATTEMPTS`."""
        if claimed.attempt >= MAX_ATTEMPTS:
            self.finish(claimed, FAILED, f"gave up after {claimed.attempt} attempts: {error}")
            return
        later = self.clock() + timedelta(seconds=min(300.0, 2.0**claimed.attempt))
        with self.db.write() as session:
            self.queue.hand_back(
                session, [(claimed.row_id, claimed.attempt)], note=error[:MAX_NOTE], next_attempt_at=later
            )
