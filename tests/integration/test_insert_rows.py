"""``insert_rows`` and ``execute_rows`` store exactly what SQLAlchemy's own executemany of the same statement
stores: the same text in every column (times, JSON, booleans), the same Python-side defaults for the
columns left out, the statement's own constants, on SQLite (where they hand the rows to the driver
themselves) and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, bindparam, func, insert, select, text, update

from conveyor.store.database import Database
from conveyor.store.tables import (
    Decision,
    Deployment,
    Event,
    Release,
    Step,
    StepAttempt,
    StepLogChunk,
    execute_rows,
    insert_rows,
)

NOW = datetime(2026, 11, 29, 14, 0, 0, 123456, tzinfo=UTC)


def _raw(db: Database, table: Table, where: str) -> list[tuple[Any, ...]]:
    """The rows as the database holds them, as text where it stores text (no type processing on the way out)."""
    columns = ", ".join(f"CAST({c.name} AS TEXT)" for c in table.c if c.name != "id")
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM {table.name} WHERE {where} ORDER BY id"))]


def _deployment(db: Database) -> int:
    with db.write() as session:
        release = Release(app="shop", sha="a" * 40, label="v1", ref="main", created_at=NOW, created_by="test")
        session.add(release)
        session.flush()
        deployment = Deployment(
            release_id=release.id,
            app="shop",
            environment="staging",
            state="pending",
            queued_at=NOW,
            updated_at=NOW,
            created_by="test",
        )
        session.add(deployment)
        session.flush()
        return deployment.id


def test_rows_are_stored_as_sqlalchemy_stores_them(db: Database) -> None:
    deployment_id = _deployment(db)
    later = NOW + timedelta(seconds=1)
    steps = cast(Table, Step.__table__)
    # ``attempt``, ``outcome``, ``measurements``, ``result``, ``cancel_requested`` are left to their defaults
    step_rows = [
        {"deployment_id": deployment_id, "kind": "deploy", "name": "deploy", "state": "queued", "due_at": at}
        for at in (NOW, later, NOW)
    ]
    payloads = [{"b": [1, 2.5, None, True], "a": "ünïcode ✓"}, {}, {"n": 2**40}]
    events = cast(Table, Event.__table__)
    event_rows = [
        {
            "kind": "step.started",
            "app": "shop",
            "environment": None,
            "release_id": None,
            "deployment_id": deployment_id,
            "actor": "w",
            "at": NOW,
            "message": f"event {n}",
            "payload": payload,
            "action": None,
            "reason": None,
            "chain_seq": None,
            "chain_hash": None,
        }
        for n, payload in enumerate(payloads)
    ]
    with db.write() as session:
        session.execute(insert(steps), step_rows)
        insert_rows(session, steps, step_rows)
        session.execute(insert(events), event_rows)
        insert_rows(session, events, event_rows)
    stored_steps = _raw(db, steps, f"deployment_id = {deployment_id}")
    assert len(stored_steps) == 6
    assert stored_steps[:3] == stored_steps[3:]
    stored_events = _raw(db, events, "kind = 'step.started'")
    assert stored_events[:3] == stored_events[3:]
    with db.read() as session:
        read = session.scalars(select(Step).where(Step.deployment_id == deployment_id).order_by(Step.id)).all()
    assert [(s.due_at, s.attempt, s.measurements, s.result, s.cancel_requested) for s in read[3:]] == [
        (NOW, 0, [], {}, False),
        (later, 0, [], {}, False),
        (NOW, 0, [], {}, False),
    ]


@pytest.mark.parametrize("model", [Decision, StepAttempt, StepLogChunk])
def test_an_empty_list_writes_nothing(db: Database, model: type) -> None:
    table = cast(Table, model.__table__)  # type: ignore[attr-defined]
    with db.write() as session:
        insert_rows(session, table, [])
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(table)) == 0


def test_a_default_it_cannot_fill_is_refused_by_name(tmp_path: Any) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    n = Column("n", Integer, default=func.abs(-1))  # a SQL expression: only SQLAlchemy's own INSERT renders it
    table = Table("counted", MetaData(), Column("id", Integer, primary_key=True), n)
    table.create(db.engine)
    with db.write() as session, pytest.raises(ValueError, match=r"counted\.n"):
        insert_rows(session, table, [{"id": 1}])
    db.dispose()


def test_equal_values_of_different_types_keep_their_own_json(tmp_path: Any) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    meta = MetaData()
    ours, theirs = (Table(n, meta, Column("id", Integer, primary_key=True), Column("v", JSON)) for n in "ab")
    meta.create_all(db.engine)
    rows = [{"id": 1, "v": 1}, {"id": 2, "v": True}, {"id": 3, "v": 1.5}, {"id": 4, "v": "1"}]
    with db.write() as session:
        insert_rows(session, ours, rows)
        session.execute(insert(theirs), rows)
    with db.engine.connect() as conn:
        stored = [list(conn.execute(text(f"SELECT v, typeof(v) FROM {t} ORDER BY id"))) for t in "ab"]
    assert stored[0] == stored[1]
    assert [v for v, _ in stored[0]][1] == "true"
    db.dispose()


def test_updates_and_upserts_store_what_sqlalchemy_stores(db: Database) -> None:
    from conveyor.engine.leases import FINISH_STEP
    from conveyor.engine.placements import _upsert_statement

    deployment_id = _deployment(db)
    steps = cast(Table, Step.__table__)
    queued = {"deployment_id": deployment_id, "kind": "deploy", "name": "deploy", "state": "running", "due_at": NOW}
    with db.write() as session:
        insert_rows(session, steps, [{**queued, "lease_owner": "w"} for _ in range(4)])
    later = NOW + timedelta(minutes=1)

    def finished(ids: list[int]) -> list[dict[str, Any]]:
        results: list[Any] = [{"ok": True, "n": 2**40}, {}]
        return [
            {
                "b_id": i,
                "b_state": "succeeded",
                "b_at": later,
                "b_outcome": "done",
                "b_measurements": [1.5],
                "b_result": r,
            }
            for i, r in zip(ids, results, strict=True)
        ]

    with db.write() as session:
        session.execute(FINISH_STEP, finished([1, 2]))
        execute_rows(session, FINISH_STEP, finished([3, 4]))
    stored = _raw(db, steps, f"deployment_id = {deployment_id}")
    assert stored[:2] == stored[2:]
    assert stored[0][steps.c.keys().index("lease_owner") - 1] is None  # the statement's own constant

    with db.read() as session:
        release_id = session.scalar(select(Release.id))
    upsert = _upsert_statement(db.dialect, True)

    def placed(app: str, health: str, at: datetime) -> dict[str, Any]:
        return {
            "app": app,
            "environment": "staging",
            "release_id": release_id,
            "deployment_id": deployment_id,
            "health": health,
            "since": at,
            "updated_at": at,
            "good_release_id": release_id,
            "good_deployment_id": deployment_id,
            "good_since": at,
        }

    with db.write() as session:
        session.execute(upsert, [placed("a", "checking", NOW)])
        execute_rows(session, upsert, [placed("b", "checking", NOW)])
    with db.write() as session:  # again: the conflict's update, which keeps ``since`` for the same deployment
        session.execute(upsert, [placed("a", "healthy", later)])
        execute_rows(session, upsert, [placed("b", "healthy", later)])
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT CAST(since AS TEXT), health, CAST(updated_at AS TEXT) FROM placements ORDER BY app")
        )
        first, second = list(rows)
    assert first == second and first[1] == "healthy"


def test_a_statement_with_an_expanding_in_is_refused(tmp_path: Any) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("n", Integer))
    table.create(db.engine)
    statement = update(table).where(table.c.id.in_([1, 2])).values(n=bindparam("n"))
    with db.write() as session, pytest.raises(ValueError, match="expanding IN"):
        execute_rows(session, statement, [{"n": 1}])
    db.dispose()
