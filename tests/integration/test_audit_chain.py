"""The events' hash chain in real databases: sealed as they are inserted on SQLite and at commit on
PostgreSQL, hashed from the values written, in commit order when ids commit out of order, whole under
many concurrent writer processes, and broken where a row was edited or deleted behind conveyor's back.
Migration 0007 chains the events it finds."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, event, func, insert, select, text, update

from conveyor.audit_trail import verify_chain
from conveyor.domain.audit import DEPLOY, GENESIS, Anchor, chain_hash
from conveyor.store.chain import CONTENT, content
from conveyor.store.database import Database
from conveyor.store.events import About, record_events
from conveyor.store.migrate import downgrade, upgrade
from conveyor.store.tables import Event, EventChain

NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)


def write(db: Database, n: int, *, kind: str = "step.started", app: str = "shop") -> list[int]:
    with db.write() as session:
        about = [
            About(f"event {i}", app, "staging", payload={"i": i, "nested": {"b": 1, "a": [1.5, None]}})
            for i in range(n)
        ]
        return record_events(session, kind, at=NOW, actor="worker-1", about=about)


def chain_positions(db: Database) -> list[tuple[int, int | None]]:
    with db.read() as session:
        return [
            (r.id, r.chain_seq) for r in session.execute(select(Event.id, Event.chain_seq).order_by(Event.chain_seq))
        ]


def test_every_committed_event_is_sealed_in_order(db: Database) -> None:
    write(db, 3)
    write(db, 1, kind="hold.lifted")
    with db.write() as session:
        record_events(
            session,
            "deployment.created",
            at=NOW,
            actor="cli:operator",
            about=[About("cli:operator asked to deploy v1 to staging", "shop", "staging")],
            action=DEPLOY,
            reason="the hotfix, ünïcode and all",
        )
    with pytest.raises(RuntimeError), db.write() as session:  # rolled back: never chained
        record_events(session, "step.started", at=NOW, actor="w", about=[About("gone")])
        raise RuntimeError("abandon")
    with db.write() as session:  # a savepoint rolled back, as the orchestrator's batches do
        record_events(session, "step.started", at=NOW, actor="w", about=[About("kept")])
        with pytest.raises(RuntimeError), session.begin_nested():
            record_events(session, "step.started", at=NOW, actor="w", about=[About("undone")])
            raise RuntimeError("undo the savepoint")
        record_events(session, "step.started", at=NOW, actor="w", about=[About("after the savepoint")])
    positions = chain_positions(db)
    assert [seq for _, seq in positions] == [1, 2, 3, 4, 5, 6, 7]
    answer = verify_chain(db)
    assert (answer["ok"], answer["verified"], answer["head"]["seq"]) == (True, 7, 7)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Event).where(Event.message == "undone")) == 0


def test_events_are_hashed_from_the_values_written_as_a_verifier_reads_them(db: Database) -> None:
    """The hash is computed from what conveyor passes to the INSERT, not from the row read back: values
    whose Python form differs from what comes back (a tuple, a time in another zone, non-ASCII text,
    integer keys) must hash the same either way."""
    later = NOW.astimezone(timezone(timedelta(hours=-5)))
    payload = {
        "tuple": (1, "two"),
        "float": 0.1,
        "text": "ünïcode ✓",
        "nested": {"z": None, "a": [True]},
        "codes": {200: 3, 50: 1},  # read back as {"200": 3, "50": 1}, in that order once sorted
    }
    with db.write() as session:
        ids = record_events(
            session,
            "deployment.started",
            at=later,
            actor="conveyor",
            about=[About("the message", "shop", "staging", payload=payload), About("second", "web")],
        )
    assert ids == sorted(ids) and len(ids) == 2
    answer = verify_chain(db)
    assert (answer["ok"], answer["verified"]) == (True, 2)
    with db.read() as session:
        rows = session.execute(select(*CONTENT).where(Event.id.in_(ids)).order_by(Event.id)).all()
        assert [content(r).payload for r in rows] == [
            {
                "tuple": [1, "two"],
                "float": 0.1,
                "text": "ünïcode ✓",
                "nested": {"z": None, "a": [True]},
                "codes": {"200": 3, "50": 1},
            },
            {},
        ]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'conveyor.db'}")
    upgrade(db)
    yield db
    db.dispose()


def test_sqlite_chains_events_in_the_insert_itself(sqlite_store: Database) -> None:
    """On SQLite (one writer at a time) a transaction's events get their positions and hashes in the
    INSERT: nothing reads them back or updates them one by one, however many there are."""
    statements: list[str] = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(sqlite_store.engine, "before_cursor_execute", listen)
    try:
        write(sqlite_store, 200)
    finally:
        event.remove(sqlite_store.engine, "before_cursor_execute", listen)
    touching_events = [s.split()[0] + " " + s.split()[1] for s in statements if " events" in s]
    assert touching_events == ["SELECT max(events.id)", "INSERT INTO"]
    assert sum("event_chain" in s for s in statements) == 2  # read the head, move it
    assert verify_chain(sqlite_store)["verified"] == 200


def test_an_empty_chain_verifies(db: Database) -> None:
    assert verify_chain(db) == {"ok": True, "verified": 0, "head": {"seq": 0, "hash": "0" * 64}, "broken": None}


@pytest.mark.postgres
def test_ids_that_commit_out_of_order_chain_in_commit_order(postgres_store: Database) -> None:
    db = postgres_store
    inserted, release = threading.Event(), threading.Event()
    first_ids: list[int] = []

    def slow_writer() -> None:
        with db.write() as session:
            first_ids.extend(record_events(session, "step.started", at=NOW, actor="slow", about=[About("slow")]))
            inserted.set()
            release.wait(10)

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert inserted.wait(10)
    later_ids = write(db, 2)  # higher ids, committed first
    release.set()
    thread.join(10)
    assert first_ids[0] < later_ids[0]
    assert chain_positions(db) == [(later_ids[0], 1), (later_ids[1], 2), (first_ids[0], 3)]
    assert verify_chain(db)["ok"] is True


WRITER = textwrap.dedent(
    """
    import random, sys
    from datetime import UTC, datetime
    from conveyor.store.database import Database
    from conveyor.store.events import About, record_events

    db = Database(sys.argv[1])
    name, rounds = sys.argv[2], int(sys.argv[3])
    for r in range(rounds):
        with db.write() as session:
            about = [About(f"{name} {r} {i}", "shop", "staging") for i in range(random.randint(1, 4))]
            record_events(session, "step.finished", at=datetime.now(UTC), actor=name, about=about)
    db.dispose()
    """
)


@pytest.mark.postgres
def test_many_writer_processes_leave_one_unbroken_chain(postgres_store: Database) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, postgres_store.url, f"writer-{n}", "60"], stderr=subprocess.PIPE
        )
        for n in range(6)
    ]
    errors = [p.communicate(timeout=240)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, errors
    with postgres_store.read() as session:
        total = session.scalar(select(func.count()).select_from(Event))
        sealed = session.scalars(select(Event.chain_seq).order_by(Event.chain_seq)).all()
    assert total is not None and total >= 6 * 60
    assert sealed == list(range(1, total + 1))
    answer = verify_chain(postgres_store)
    assert (answer["ok"], answer["verified"]) == (True, total), answer


# -- tampering ----------------------------------------------------------------------------------------


def tamper(db: Database, statement: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(statement)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "edit",
    [
        update(Event).values(message="nothing happened here"),
        update(Event).values(payload={"i": 99}),
        update(Event).values(actor="cli:someone-else"),
        update(Event).values(at=NOW - timedelta(days=1)),
    ],
    ids=["message", "payload", "actor", "at"],
)
def test_an_edited_event_is_named(db: Database, edit: object) -> None:
    ids = write(db, 5)
    tamper(db, edit.where(Event.id == ids[2]))  # type: ignore[attr-defined]
    answer = verify_chain(db)
    assert answer["ok"] is False
    assert answer["verified"] == 2
    assert answer["broken"]["event_id"] == ids[2]
    assert answer["broken"]["kind"] == "step.started"
    assert "changed after it was recorded" in answer["broken"]["problem"]


def test_a_deleted_event_is_named_at_the_next(db: Database) -> None:
    ids = write(db, 5)
    tamper(db, delete(Event).where(Event.id == ids[1]))
    broken = verify_chain(db)["broken"]
    assert (broken["event_id"], broken["problem"]) == (
        ids[2],
        "the event(s) before it in the chain (position 2) are missing",
    )


def test_deleting_the_newest_events_breaks_the_head(db: Database) -> None:
    ids = write(db, 5)
    tamper(db, delete(Event).where(Event.id >= ids[3]))
    answer = verify_chain(db)
    assert answer["broken"] == {
        "event_id": None,
        "seq": 5,
        "kind": None,
        "at": None,
        "problem": "the newest event(s) are missing: the head is at position 5, the last event at 3",
    }


def test_an_event_inserted_behind_conveyors_back_is_named(db: Database) -> None:
    write(db, 2)
    tamper(
        db,
        insert(Event).values(kind="hold.lifted", actor="cli:intruder", at=NOW, message="", payload={}),
    )
    with db.read() as session:
        stray = session.scalar(select(Event.id).where(Event.actor == "cli:intruder"))
    broken = verify_chain(db)["broken"]
    assert (broken["event_id"], broken["problem"]) == (
        stray,
        "it was never sealed into the chain (written around conveyor?)",
    )


def test_a_rewritten_head_is_noticed(db: Database) -> None:
    write(db, 2)
    tamper(db, update(EventChain).values(hash="f" * 64))
    assert verify_chain(db)["broken"]["problem"] == "the chain's head does not match the newest event's hash"


# -- migration 0007 -------------------------------------------------------------------------------------


def test_0007_marks_past_actions_and_chains_existing_events(db: Database) -> None:
    downgrade(db, "0006")
    at = "2026-11-01 10:00:00.000001"
    rows = [
        ("release.created", "cli", "release v1 of shop: 2 commit(s)"),
        ("deployment.created", "cli", "new release v1 heads for integration"),
        ("deployment.created", "cli", "cli asked to deploy v1 to staging"),
        ("deployment.created", "api:ci", "api:ci promoted v1 from staging to production"),
        ("deployment.created", "conveyor", "promoted v1 from staging to production"),
        ("hold.lifted", "conveyor", "fixed forward: v2 passed staging"),
        ("hold.lifted", "cli", "database fixed by hand; 100% sure"),
        ("step.started", "worker-1", "deploy"),
    ]
    with db.engine.begin() as conn:
        for kind, actor, message in rows:
            conn.execute(
                text(
                    "INSERT INTO events (kind, app, environment, actor, at, message, payload) "
                    "VALUES (:kind, 'shop', 'staging', :actor, :at, :message, :payload)"
                ),
                {"kind": kind, "actor": actor, "at": at, "message": message, "payload": '{"n": 1}'},
            )
    upgrade(db)
    with db.read() as session:
        found = session.execute(select(Event.action, Event.reason).order_by(Event.id)).all()
    assert [tuple(r) for r in found] == [
        ("release", None),
        (None, None),
        ("deploy", None),
        ("promote", None),
        (None, None),
        (None, None),
        ("unblock", "database fixed by hand; 100% sure"),
        (None, None),
    ]
    answer = verify_chain(db)
    assert (answer["ok"], answer["verified"]) == (True, len(rows))
    write(db, 2)  # new events chain on from the migrated head
    assert verify_chain(db)["verified"] == len(rows) + 2


def test_a_rewrite_with_recomputed_hashes_is_caught_by_a_kept_anchor(db: Database) -> None:
    write(db, 3)
    kept = verify_chain(db)["head"]  # what an operator keeps outside the database
    write(db, 2)
    with db.engine.begin() as conn:  # edit event 2 and recompute every hash after it, and the head
        conn.execute(update(Event).where(Event.chain_seq == 2).values(message="nothing happened"))
    with db.write() as session:
        previous = GENESIS
        for row in session.execute(select(*CONTENT).order_by(Event.chain_seq)).all():
            previous = chain_hash(previous, content(row).canonical())
            session.execute(update(Event).where(Event.id == row.id).values(chain_hash=previous))
        session.execute(update(EventChain).values(hash=previous))
    assert verify_chain(db)["ok"] is True  # the chain alone cannot tell
    broken = verify_chain(db, Anchor(kept["seq"], kept["hash"]))["broken"]
    assert (broken["seq"], broken["problem"]) == (
        3,
        f"the chain no longer has the expected hash {kept['hash']} here (history was rewritten)",
    )
