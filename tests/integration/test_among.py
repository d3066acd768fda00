"""``among(column, values)`` finds what ``column.in_(values)`` finds, on SQLite and on PostgreSQL, with the
values bound as one parameter: a thousand ids are one statement to compile, not a thousand parameters."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, event, select, update

from conveyor.store.database import Database
from conveyor.store.tables import Deployment, Release, among

NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)


def _deployments(db: Database, apps: list[str]) -> list[int]:
    with db.write() as session:
        release = Release(app="shop", sha="a" * 40, label="v1", ref="main", created_at=NOW, created_by="test")
        session.add(release)
        session.flush()
        rows = [
            Deployment(
                release_id=release.id,
                app=app,
                environment="staging",
                state="pending",
                origin_key=f'{app}\'s "key" ☃',  # quotes and non-ASCII go through the JSON or array intact
                queued_at=NOW,
                updated_at=NOW,
                created_by="test",
            )
            for app in apps
        ]
        session.add_all(rows)
        session.flush()
        return [d.id for d in rows]


def test_among_finds_what_in_finds(db: Database) -> None:
    apps = [f"app{i:04d}" for i in range(1500)]
    ids = _deployments(db, apps)
    asked = [*ids[::3], 10**9]  # one id that is nowhere
    with db.read() as session:
        by_in = set(session.scalars(select(Deployment.id).where(Deployment.id.in_(asked))))
        by_among = set(session.scalars(select(Deployment.id).where(among(Deployment.id, asked))))
        assert by_among == by_in == set(ids[::3])
        names = {apps[5], apps[700], "nowhere"}
        assert set(session.scalars(select(Deployment.app).where(among(Deployment.app, names)))) == names - {"nowhere"}
        keys = [f'{apps[9]}\'s "key" ☃']
        assert session.scalars(select(Deployment.app).where(among(Deployment.origin_key, keys))).all() == [apps[9]]
        assert session.scalars(select(Deployment.id).where(among(Deployment.id, []))).all() == []
        outside = session.scalars(select(Deployment.id).where(~among(Deployment.id, ids[1:]))).all()
        assert outside == [ids[0]]


def test_among_in_updates_and_deletes(db: Database) -> None:
    ids = _deployments(db, ["a", "b", "c", "d"])
    with db.write() as session:
        changed = session.execute(
            update(Deployment)
            .where(among(Deployment.id, ids[:2]), Deployment.state == "pending")
            .values(state="waiting")
            .returning(Deployment.id)
        ).all()
        assert sorted(r.id for r in changed) == ids[:2]
        session.execute(delete(Deployment).where(among(Deployment.app, ["d"])))
    with db.read() as session:
        states = {app: state for app, state in session.execute(select(Deployment.app, Deployment.state))}
    assert states == {"a": "waiting", "b": "waiting", "c": "pending"}


def test_one_statement_for_any_number_of_values(db: Database) -> None:
    """The SQL does not grow with the list: every length is the same statement, compiled once."""
    ids = _deployments(db, [f"app{i}" for i in range(50)])
    seen: list[str] = []

    def remember(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", remember)
    try:
        with db.read() as session:
            for n in (1, 7, 50):
                assert len(session.scalars(select(Deployment.id).where(among(Deployment.id, ids[:n]))).all()) == n
    finally:
        event.remove(db.engine, "before_cursor_execute", remember)
    asked = [s for s in seen if "deployments" in s]
    assert len(asked) == 3 and len(set(asked)) == 1
