"""The outbox as a queue: claiming due deliveries under a lease, finishing them, listing them.

The outbox is a :class:`~conveyor.store.leased_queue.LeasedQueue` fenced by ``attempts``. A row is
``pending`` until it is ``delivered`` or ``failed``; a claimed row stays ``pending`` under its lease,
and a row whose lease ran out (its sender died) is due again: nothing else is needed to retry it.

Ordering: a row is claimable only while no older ``pending`` row has the same notifier and release
(rows without a release form one queue per notifier). So one notifier gets one release's notifications
in event order, one at a time, and a receiver that is down holds back only what it has not yet taken.
A notifier ordered by app (``by_app``: one that reports what runs where, like ``github``, whose report
about a newer release supersedes an older one's) is also held back by an older pending row of the same
app, whatever its release: it gets one app's notifications in event order across its releases.

Each notifier's failures are retried and given up by its own :class:`~conveyor.config.retry.RetryPolicy`
(its ``retry`` in the config); a notifier without one, such as one no longer configured, goes by the
queue's default policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from conveyor.config.retry import RetryPolicy
from conveyor.notifiers.base import DeliveryContext, DeliveryResult, Notification, ReleaseRef
from conveyor.store.database import Database
from conveyor.store.leased_queue import LeasedQueue
from conveyor.store.tables import Event, NotifierMemory, Outbox, Release

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True)
class ClaimedDelivery:
    row_id: int
    attempt: int
    notification: Notification
    ctx: DeliveryContext

    @property
    def notifier(self) -> str:
        return self.ctx.notifier


class OutboxQueue:
    def __init__(
        self,
        db: Database,
        *,
        owner: str,
        clock: Callable[[], datetime],
        lease_seconds: float,
        retry: RetryPolicy,
        team_of: Callable[[str | None], str | None],
        redact: Callable[[str], str] = lambda text: text,
        policies: Mapping[str, RetryPolicy] | None = None,
        by_app: Collection[str] = (),
    ) -> None:
        self.db, self.owner, self.clock = db, owner, clock
        self.queue = LeasedQueue(
            Outbox,
            owner=owner,
            lease=timedelta(seconds=lease_seconds),
            fencing="attempts",
            held=PENDING,
            due=lambda now: (  # a claimed row stays pending: its lease, once run out, makes it due again
                Outbox.state == PENDING,
                Outbox.next_attempt_at <= now,
                or_(Outbox.lease_expires_at.is_(None), Outbox.lease_expires_at < now),
            ),
        )
        self.retry, self.team_of, self.redact = retry, team_of, redact
        self.policies = dict(policies or {})
        self.by_app = frozenset(by_app)

    def policy(self, notifier: str) -> RetryPolicy:
        """The notifier's own policy, or the default ``retry`` for a notifier that has none."""
        return self.policies.get(notifier, self.retry)

    def _ours(self, notifiers: Collection[str]) -> tuple[ColumnElement[bool], ...]:
        """The ordering rule on top of the queue's due rows: no older pending row of the same notifier and
        release (or, for a notifier ordered by app, of the same app)."""
        earlier = aliased(Outbox)
        same_queue: ColumnElement[bool] = earlier.release_id.is_not_distinct_from(Outbox.release_id)
        by_app = sorted(self.by_app.intersection(notifiers))
        if by_app:
            earlier_event, this_event = aliased(Event), aliased(Event)
            same_app = (
                exists()
                .where(
                    earlier_event.id == earlier.event_id,
                    this_event.id == Outbox.event_id,
                    earlier_event.app == this_event.app,
                )
                .correlate_except(earlier_event, this_event)  # both rows come from the queries around it
            )
            same_queue = or_(same_queue, and_(Outbox.notifier.in_(by_app), same_app))
        blocked = exists().where(
            earlier.state == PENDING,
            earlier.notifier == Outbox.notifier,
            same_queue,
            earlier.id < Outbox.id,
        )
        return Outbox.notifier.in_(notifiers), ~blocked

    def anything_due(self, notifiers: Collection[str]) -> bool:
        """A cheap read, so an idle sender does not open a write transaction on every poll."""
        with self.db.peek() as conn:
            return self.queue.any_due(conn, self.clock(), *self._ours(notifiers))

    def claim(self, notifiers: Collection[str], limit: int) -> list[ClaimedDelivery]:
        if limit <= 0 or not notifiers or not self.anything_due(notifiers):
            return []
        with self.db.write() as session:
            now = self.clock()
            rows = self.queue.lock_due(session, now, limit, *self._ours(notifiers))
            for row in rows:
                self.queue.take(row, now)
            return [self._claimed(session, row) for row in rows]

    def _claimed(self, session: Session, row: Outbox) -> ClaimedDelivery:
        event = session.get_one(Event, row.event_id)
        release = session.get(Release, event.release_id) if event.release_id is not None else None
        memory: dict[str, str] = {}
        if row.release_id is not None:
            stmt = select(NotifierMemory.key, NotifierMemory.value).where(
                NotifierMemory.notifier == row.notifier, NotifierMemory.release_id == row.release_id
            )
            memory = {key: value for key, value in session.execute(stmt)}
        notification = Notification(
            id=event.id,
            kind=event.kind,
            at=event.at,
            actor=event.actor,
            app=event.app,
            environment=event.environment,
            release=ReleaseRef(release.id, release.label, release.sha) if release else None,
            deployment_id=event.deployment_id,
            message=event.message,
            team=self.team_of(event.app),
            data=event.payload,
        )
        ctx = DeliveryContext(notifier=row.notifier, delivery_id=row.delivery_id, attempt=row.attempts, memory=memory)
        return ClaimedDelivery(row.id, row.attempts, notification, ctx)

    def finish(self, claimed: ClaimedDelivery, result: DeliveryResult) -> bool:
        """Record an attempt's result; False when the lease was lost (another sender owns the row now)."""
        with self.db.write() as session:
            now = self.clock()
            values: dict[str, Any] = {}
            if result.ok:
                values.update(state=DELIVERED, delivered_at=now, last_error=None)
            else:
                values["last_error"] = self.redact(result.message or "failed")[:MAX_ERROR_LENGTH]
                age = (now - claimed.notification.at).total_seconds()
                policy = self.policy(claimed.notifier)
                if policy.gives_up(claimed.attempt, age):
                    values["state"] = FAILED
                else:
                    values["next_attempt_at"] = now + timedelta(seconds=policy.delay(claimed.attempt))
            if not self.queue.hand_back(session, [(claimed.row_id, claimed.attempt)], **values):
                return False
            release = claimed.notification.release
            if result.remember and release is not None:  # a failed attempt may have done part of its work
                _remember(session, claimed.notifier, release.id, result.remember, now)
            if values.get("state") == FAILED:
                log.warning(
                    "gave up notifying %s of event %s after %d attempt(s): %s",
                    claimed.notifier,
                    claimed.notification.id,
                    claimed.attempt,
                    values["last_error"],
                )
            return True

    def release(self, deliveries: list[ClaimedDelivery]) -> None:
        """Hand rows still being delivered back at once (a stopping sender), instead of leaving them to
        their lease; a late result of those attempts is then refused, as the lease is no longer ours."""
        with self.db.write() as session:
            self.queue.hand_back(session, [(c.row_id, c.attempt) for c in deliveries])

    def give_up_stale(self) -> int:
        """Fail pending rows whose event is older than their notifier's ``max_age``, one update per policy;
        rows of a notifier no longer configured (which no sender claims) go by the default policy."""
        with self.db.write() as session:
            now = self.clock()
            own = sum(
                _give_up_older(session, now, policy.max_age, Outbox.notifier == name)
                for name, policy in self.policies.items()
            )
            return own + _give_up_older(session, now, self.retry.max_age, Outbox.notifier.not_in(list(self.policies)))


def _give_up_older(session: Session, now: datetime, max_age: float, whose: ColumnElement[bool]) -> int:
    """Fail ``whose`` pending, unleased rows whose event is more than ``max_age`` seconds old."""
    # probed per pending row (by the events' primary key), so the sweep never reads the whole event history
    stale = exists().where(Event.id == Outbox.event_id, Event.at < now - timedelta(seconds=max_age))
    result = session.execute(
        update(Outbox)
        .where(
            whose,
            Outbox.state == PENDING,
            stale,
            or_(Outbox.lease_expires_at.is_(None), Outbox.lease_expires_at < now),
        )
        .values(
            state=FAILED,
            last_error=func.coalesce(Outbox.last_error + "; ", "") + f"gave up {max_age / 3600:g}h after the event",
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _remember(session: Session, notifier: str, release_id: int, values: Mapping[str, str], now: datetime) -> None:
    for key, value in values.items():
        row = session.get(NotifierMemory, (notifier, release_id, key))
        if row is None:
            session.add(NotifierMemory(notifier=notifier, release_id=release_id, key=key, value=value, updated_at=now))
        else:
            row.value, row.updated_at = value, now


def deliveries(db: Database, *, failed_only: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    """Outbox rows with their event, newest first, as JSON-ready dicts (for ``conveyor notifications``)."""
    stmt = (
        select(Outbox, Event, Release.label)
        .join(Event, Event.id == Outbox.event_id)
        .outerjoin(Release, Release.id == Outbox.release_id)
        .order_by(Outbox.id.desc())
        .limit(limit)
    )
    if failed_only:
        stmt = stmt.where(Outbox.state == FAILED)
    with db.read() as session:
        rows = session.execute(stmt).all()
    return [
        {
            "id": row.id,
            "delivery_id": row.delivery_id,
            "event_id": event.id,
            "kind": event.kind,
            "at": event.at.isoformat(),
            "app": event.app,
            "environment": event.environment,
            "release": label,
            "notifier": row.notifier,
            "state": row.state,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "next_attempt_at": row.next_attempt_at.isoformat() if row.state == PENDING else None,
            "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
        }
        for row, event, label in rows
    ]
