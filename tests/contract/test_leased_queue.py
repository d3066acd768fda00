"""The leased-queue primitive itself, on SQLite and PostgreSQL, over a table of its own (as a future
intake queue would be): two owners never hold the same row, a stale token is fenced off, and a lease
that ran out makes its row claimable again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Integer, String, or_, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from conveyor.store.database import Database
from conveyor.store.leased_queue import LeasedQueue
from conveyor.store.tables import UTCDateTime

T0 = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)


class _Base(DeclarativeBase):
    pass


class Job(_Base):
    __tablename__ = "leased_queue_contract_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


@pytest.fixture
def jobs(db: Database) -> Iterator[Database]:
    _Base.metadata.drop_all(db.engine)
    _Base.metadata.create_all(db.engine)
    with db.write() as session:
        session.add_all(Job() for _ in range(20))
    yield db
    _Base.metadata.drop_all(db.engine)


def queue(db: Database, owner: str) -> LeasedQueue:
    return LeasedQueue(
        Job,
        owner=owner,
        lease=timedelta(seconds=10),
        fencing="attempts",
        held="running",
        due=lambda now: (or_(Job.state == "queued", Job.lease_expires_at < now),),
    )


def claim(db: Database, q: LeasedQueue, now: datetime, limit: int) -> list[tuple[int, int]]:
    with db.write() as session:
        rows = q.lock_due(session, now, limit)
        for row in rows:
            q.take(row, now)
        return [(row.id, row.attempts) for row in rows]


def test_two_owners_never_claim_the_same_row(jobs: Database) -> None:
    got: dict[str, list[int]] = {"a": [], "b": []}

    def work(owner: str) -> None:
        q = queue(jobs, owner)
        while batch := claim(jobs, q, T0, 3):
            got[owner] += [row_id for row_id, _ in batch]

    threads = [threading.Thread(target=work, args=(owner,)) for owner in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got["a"] + got["b"]) == list(range(1, 21))  # each row once, none twice
    with jobs.read() as session:
        assert set(session.scalars(select(Job.lease_owner))) <= {"a", "b"}


def test_a_row_locked_by_one_claimer_is_skipped_by_another(jobs: Database) -> None:
    if not jobs.is_postgres:
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serialises claimers")
    a, b = queue(jobs, "a"), queue(jobs, "b")
    with jobs.write() as session:
        held = [row.id for row in a.lock_due(session, T0, 5)]  # locked, not yet committed
        assert claim(jobs, b, T0, 5) == [(i, 1) for i in range(6, 11)]
    assert held == [1, 2, 3, 4, 5]


def test_a_stale_token_is_refused(jobs: Database) -> None:
    a, b = queue(jobs, "a"), queue(jobs, "b")
    [(row_id, token)] = claim(jobs, a, T0, 1)
    later = T0 + timedelta(seconds=11)  # a paused past its lease; b claims the row again
    [(again, new_token)] = claim(jobs, b, later, 1)
    assert (again, new_token) == (row_id, token + 1)
    with jobs.write() as session:
        assert a.extend(session, [(row_id, token)], later) == {row_id}
        assert a.lock_held(session, [(row_id, token)]) == {}
        assert b.lock_held(session, [(row_id, token)]) == {}  # b, but a's token
        assert list(b.lock_held(session, [(row_id, new_token)])) == [row_id]
        assert a.hand_back(session, [(row_id, token)], state="done") == []
        assert b.hand_back(session, [(row_id, token)], state="done") == []  # b, but a's token
        assert b.hand_back(session, [(row_id, new_token)], state="done") == [row_id]
    with jobs.read() as session:
        row = session.get_one(Job, row_id)
        assert (row.state, row.attempts, row.lease_owner, row.lease_expires_at) == ("done", 2, None, None)


def test_an_expired_lease_makes_its_row_claimable_again(jobs: Database) -> None:
    a, b = queue(jobs, "a"), queue(jobs, "b")
    first = claim(jobs, a, T0, 20)
    assert len(first) == 20
    assert claim(jobs, b, T0 + timedelta(seconds=5), 20) == []  # still leased
    with jobs.write() as session:
        assert a.extend(session, first[:1], T0 + timedelta(seconds=5)) == set()  # now until T0+15s
        expired = [row.id for row in b.lock_expired(session, T0 + timedelta(seconds=11), 100)]
    assert expired == list(range(2, 21))
    again = claim(jobs, b, T0 + timedelta(seconds=11), 20)
    assert again == [(i, 2) for i in range(2, 21)]  # the extended one stays a's


def test_a_batch_of_leases_is_extended_at_once_and_each_row_fenced(jobs: Database) -> None:
    """A heartbeat renews every running row in one statement, and still refuses each row it lost: one
    taken over by another owner, one handed back, one still ours under a newer token than it names."""
    a, b = queue(jobs, "a"), queue(jobs, "b")
    mine = claim(jobs, a, T0, 5)  # rows 1..5, token 1
    later = T0 + timedelta(seconds=11)
    with jobs.write() as session:
        assert a.extend(session, mine[1:], T0 + timedelta(seconds=5)) == set()  # 2..5 until T0+15s
        assert a.hand_back(session, [mine[2]], state="queued") == [3]
    [(taken, _)] = claim(jobs, b, later, 1)  # row 1's lease ran out: b takes it (row 3 is queued: later)
    assert taken == 1
    with jobs.write() as session:
        stale = (mine[3][0], mine[3][1] + 1)  # row 4 is ours, but not under this token
        lost = a.extend(session, [mine[0], mine[1], mine[2], stale, mine[4]], later)
        assert lost == {1, 3, 4}
    with jobs.read() as session:
        expires = dict(session.execute(select(Job.id, Job.lease_expires_at).where(Job.lease_owner == "a")).all())
    assert expires == {
        2: later + timedelta(seconds=10),
        4: T0 + timedelta(seconds=15),
        5: later + timedelta(seconds=10),
    }


def test_take_all_leases_a_batch_each_under_its_next_token_and_keeps_when_it_was_first_taken(jobs: Database) -> None:
    q = queue(jobs, "w1")
    with jobs.write() as session:
        rows = q.lock_due_rows(session, T0, 3)
        expires = q.take_all(session, [(r[0], r[1]) for r in rows], T0, first_taken="first_taken_at")
    assert expires == T0 + timedelta(seconds=10)
    taken = [r[0] for r in rows]
    later = T0 + timedelta(seconds=30)  # the leases ran out: the rows are due again
    other = queue(jobs, "w2")
    with jobs.write() as session:
        again = [(r[0], r[1]) for r in other.lock_due_rows(session, later, 3)]
        assert [i for i, _ in again] == taken
        other.take_all(session, again, later, first_taken="first_taken_at")
    with jobs.read() as session:
        found = session.scalars(select(Job).where(Job.id.in_(taken)).order_by(Job.id)).all()
    assert [(j.state, j.attempts, j.lease_owner, j.lease_expires_at, j.first_taken_at) for j in found] == [
        ("running", 2, "w2", later + timedelta(seconds=10), T0)
    ] * 3
