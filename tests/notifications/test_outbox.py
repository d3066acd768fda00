"""The outbox, on SQLite and PostgreSQL: rows commit with their event, are claimed under a lease one
release at a time per notifier, retried with backoff, given up, and remembered per release."""

from __future__ import annotations

import threading
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from conveyor.config.retry import RetryPolicy
from conveyor.domain.event_kinds import NOTIFYING_KINDS
from conveyor.notifiers.base import DeliveryResult
from conveyor.notify.outbox import ClaimedDelivery, OutboxQueue
from conveyor.notify.routing import Router
from conveyor.store.database import Database
from conveyor.store.events import record_event
from conveyor.store.tables import Event, Outbox, Release

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ROUTER = Router(
    team_of={"web": "publishing"},
    team_notifiers={"publishing": ("chat",)},
    global_notifiers=("audit",),
    kinds={"chat": NOTIFYING_KINDS, "audit": NOTIFYING_KINDS},
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def routed(db: Database) -> Database:
    db.router = ROUTER
    return db


def add_release(db: Database, app: str = "web") -> int:
    with db.write() as session:
        release = Release(
            app=app, sha=uuid.uuid4().hex[:40], label="v1", ref="main", commits=[], created_at=T0, created_by="test"
        )
        session.add(release)
        session.flush()
        return release.id


def add_event(db: Database, kind: str, release_id: int | None, at: datetime = T0, app: str | None = "web") -> int:
    with db.write() as session:
        return record_event(session, kind, at=at, actor="test", app=app, release_id=release_id, message=kind)


def count(db: Database, table: Any) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def rows(db: Database) -> list[Outbox]:
    with db.read() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def queue(db: Database, clock: Clock, owner: str = "sender-a", **retry: Any) -> OutboxQueue:
    policy = RetryPolicy(**({"jitter": 0.0} | retry))
    return OutboxQueue(db, owner=owner, clock=clock, lease_seconds=60, retry=policy, team_of=ROUTER.team)


def ids(claimed: list[ClaimedDelivery]) -> list[tuple[str, int]]:
    return [(c.notifier, c.notification.id) for c in claimed]


OK = DeliveryResult(True, "fine")
DOWN = DeliveryResult(False, "cannot reach hooks.example.org: connection refused")


# -- written with the event ----------------------------------------------------------------------------


def test_an_event_and_its_notifications_commit_together(routed: Database) -> None:
    release_id = add_release(routed)
    event_id = add_event(routed, "deployment.failed", release_id)
    found = rows(routed)
    assert [(r.notifier, r.event_id, r.release_id, r.state, r.attempts) for r in found] == [
        ("chat", event_id, release_id, "pending", 0),
        ("audit", event_id, release_id, "pending", 0),
    ]
    assert all(r.next_attempt_at == T0 for r in found)
    assert len({uuid.UUID(r.delivery_id) for r in found}) == 2


def test_a_rolled_back_transaction_leaves_neither_event_nor_notification(routed: Database) -> None:
    with pytest.raises(RuntimeError), routed.write() as session:
        record_event(session, "deployment.failed", at=T0, actor="test", app="web")
        session.flush()
        assert session.scalar(select(func.count()).select_from(Outbox)) == 2
        raise RuntimeError("the state change failed after its event was written")
    assert (count(routed, Event), count(routed, Outbox)) == (0, 0)


def test_a_rolled_back_savepoint_takes_its_notifications_with_it(routed: Database) -> None:
    """The orchestrator applies each intent in a savepoint: an intent undone notifies nobody."""
    with routed.write() as session:
        with suppress(RuntimeError), session.begin_nested():
            record_event(session, "deployment.failed", at=T0, actor="test", app="web")
            session.flush()
            raise RuntimeError("this intent lost a race")
        record_event(session, "deployment.succeeded", at=T0, actor="test", app="web")
    with routed.read() as session:
        kinds = session.scalars(select(Event.kind).join(Outbox, Outbox.event_id == Event.id)).all()
    assert kinds == ["deployment.succeeded", "deployment.succeeded"]


def test_events_that_notify_nobody_write_no_rows(routed: Database) -> None:
    add_event(routed, "step.finished", None)
    add_event(routed, "deployment.waiting", None)
    assert (count(routed, Event), count(routed, Outbox)) == (2, 0)


def test_without_a_router_nothing_is_routed(db: Database) -> None:
    add_event(db, "deployment.failed", None)
    assert (count(db, Event), count(db, Outbox)) == (1, 0)


# -- claimed in order, under a lease ----------------------------------------------------------------------


def test_only_the_oldest_undelivered_row_of_a_release_is_claimed(routed: Database) -> None:
    clock = Clock()
    one, two = add_release(routed), add_release(routed)
    e1, e2 = add_event(routed, "deployment.started", one), add_event(routed, "deployment.succeeded", one)
    e3 = add_event(routed, "release.created", two)
    e4, e5 = add_event(routed, "hold.lifted", None, app=None), add_event(routed, "hold.lifted", None, app=None)
    q = queue(routed, clock)
    first = q.claim(["chat", "audit"], 50)
    # one per (notifier, release); events without a release queue per notifier
    assert ids(first) == [("chat", e1), ("audit", e1), ("chat", e3), ("audit", e3), ("audit", e4)]
    assert q.claim(["chat", "audit"], 50) == []  # the heads are leased, the rest wait behind them
    for claimed in first:
        assert q.finish(claimed, OK)
    assert ids(q.claim(["chat", "audit"], 50)) == [("chat", e2), ("audit", e2), ("audit", e5)]


def test_a_failed_attempt_backs_off_and_holds_back_the_rest_of_its_release(routed: Database) -> None:
    clock = Clock()
    release = add_release(routed)
    e1, e2 = add_event(routed, "deployment.started", release), add_event(routed, "deployment.succeeded", release)
    q = queue(routed, clock)
    [head] = q.claim(["chat"], 10)
    assert q.finish(head, DOWN)
    failed = next(r for r in rows(routed) if r.id == head.row_id)
    assert (failed.state, failed.attempts, failed.last_error) == ("pending", 1, DOWN.message)
    assert failed.next_attempt_at == T0 + timedelta(seconds=1)
    assert q.claim(["chat"], 10) == []  # not due yet, and e2 must not overtake it
    clock.advance(1)
    [again] = q.claim(["chat"], 10)
    assert (again.notification.id, again.attempt, again.ctx.delivery_id) == (e1, 2, head.ctx.delivery_id)
    assert q.finish(again, DOWN)
    clock.advance(1.5)
    assert q.claim(["chat"], 10) == []  # the second delay is 2 s
    clock.advance(0.5)
    [third] = q.claim(["chat"], 10)
    assert q.finish(third, OK)
    [next_one] = q.claim(["chat"], 10)
    assert next_one.notification.id == e2
    delivered = next(r for r in rows(routed) if r.id == head.row_id)
    assert (delivered.state, delivered.attempts, delivered.delivered_at) == ("delivered", 3, clock.now)


def test_a_crashed_senders_rows_are_claimed_again_and_its_late_result_refused(routed: Database) -> None:
    clock = Clock()
    add_event(routed, "deployment.failed", add_release(routed))
    crashed, survivor = queue(routed, clock, "sender-a"), queue(routed, clock, "sender-b")
    [lost] = crashed.claim(["chat"], 10)
    clock.advance(59)
    assert survivor.claim(["chat"], 10) == []  # still leased
    clock.advance(2)
    [retried] = survivor.claim(["chat"], 10)
    assert (retried.row_id, retried.attempt, retried.ctx.delivery_id) == (lost.row_id, 2, lost.ctx.delivery_id)
    assert not crashed.finish(lost, OK)  # fenced: the first sender no longer holds it
    assert survivor.finish(retried, OK)
    assert next(r for r in rows(routed) if r.notifier == "chat").state == "delivered"


def test_given_up_after_max_attempts_then_the_release_goes_on(routed: Database) -> None:
    clock = Clock()
    release = add_release(routed)
    add_event(routed, "deployment.started", release)
    e2 = add_event(routed, "deployment.succeeded", release)
    q = queue(routed, clock, max_attempts=3)
    for _ in range(3):
        [head] = q.claim(["chat"], 10)
        assert q.finish(head, DOWN)
        clock.advance(600)
    given_up = next(r for r in rows(routed) if r.id == head.row_id)
    assert (given_up.state, given_up.attempts, given_up.last_error) == ("failed", 3, DOWN.message)
    assert [c.notification.id for c in q.claim(["chat"], 10)] == [e2]


def test_rows_older_than_max_age_are_given_up(routed: Database) -> None:
    clock = Clock()
    add_event(routed, "deployment.failed", add_release(routed))
    clock.advance(25 * 3600)
    fresh = add_event(routed, "deployment.succeeded", add_release(routed), at=clock.now)
    assert queue(routed, clock).give_up_stale() == 2  # both notifiers of the old event
    states = {(r.notifier, r.event_id): r.state for r in rows(routed)}
    assert states[("chat", fresh)] == states[("audit", fresh)] == "pending"
    assert sorted(states.values()) == ["failed", "failed", "pending", "pending"]
    assert all(r.last_error == "gave up 24h after the event" for r in rows(routed) if r.state == "failed")


def test_what_a_notifier_remembers_reaches_the_next_message_of_the_release(routed: Database) -> None:
    clock = Clock()
    release, other = add_release(routed), add_release(routed)
    add_event(routed, "deployment.started", release)
    add_event(routed, "deployment.started", other)
    add_event(routed, "deployment.succeeded", release)
    q = queue(routed, clock)
    first, first_other = q.claim(["chat"], 10)
    assert first.ctx.memory == {} and first_other.ctx.memory == {}
    assert q.finish(first, DeliveryResult(True, remember={"thread": "ts-1"}))
    assert q.finish(first_other, DeliveryResult(True, remember={"thread": "ts-2"}))
    [second] = q.claim(["chat"], 10)
    assert second.ctx.memory == {"thread": "ts-1"}
    assert q.finish(second, DeliveryResult(True, remember={"thread": "ts-1", "last": "succeeded"}))


def test_what_a_failed_attempt_remembers_reaches_its_retry(routed: Database) -> None:
    """A notifier that did part of its work before failing (a GitHub deployment made, its status not
    posted) remembers it, so the retry does not do it again."""
    clock = Clock()
    release = add_release(routed)
    add_event(routed, "deployment.started", release)
    q = queue(routed, clock)
    [first] = q.claim(["chat"], 10)
    assert q.finish(first, DeliveryResult(False, "status refused", remember={"deployment:1": "77"}))
    clock.advance(3600)
    [retry] = q.claim(["chat"], 10)
    assert retry.row_id == first.row_id and retry.attempt == 2
    assert retry.ctx.memory == {"deployment:1": "77"}


def test_a_notifier_ordered_by_app_gets_one_apps_rows_in_order_across_releases(routed: Database) -> None:
    clock = Clock()
    first, second, other_app = add_release(routed), add_release(routed), add_release(routed, app="api")
    add_event(routed, "deployment.succeeded", first)
    add_event(routed, "deployment.started", second)
    add_event(routed, "deployment.started", other_app, app="api")
    by_app = OutboxQueue(
        routed, owner="w", clock=clock, lease_seconds=60, retry=RetryPolicy(), team_of=ROUTER.team, by_app=["audit"]
    )
    # audit (ordered by app) waits for web's first release before its second; api is another app
    claimed = {c.notification.release.id: c for c in by_app.claim(["audit"], 10) if c.notification.release}
    assert sorted(claimed) == [first, other_app]
    assert by_app.finish(claimed[first], DeliveryResult(True))
    [then] = by_app.claim(["audit"], 10)
    assert then.notification.release is not None and then.notification.release.id == second
    # chat is ordered by release as before: both web releases at once
    assert len(by_app.claim(["chat"], 10)) == 2


def test_claimers_in_parallel_never_share_a_row(routed: Database) -> None:
    releases = [add_release(routed) for _ in range(6)]
    for release in releases:
        add_event(routed, "deployment.started", release)
        add_event(routed, "deployment.succeeded", release)
    claimed: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    clock = Clock()

    def work(owner: str) -> None:
        q = queue(routed, clock, owner)
        try:
            for _ in range(20):
                for c in q.claim(["chat", "audit"], 3):
                    with lock:
                        claimed.append((c.row_id, c.attempt))
                    assert q.finish(c, OK)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"sender-{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert sorted(claimed) == sorted({(row_id, 1) for row_id, _ in claimed})  # each row once, first attempt
    assert len(claimed) == 24
    assert {r.state for r in rows(routed)} == {"delivered"}
