"""Revision 0006 moves each step's log column into one chunk, and back on downgrade, on both backends."""

from __future__ import annotations

from sqlalchemy import inspect, text

from conveyor.store.database import Database
from conveyor.store.migrate import downgrade, upgrade
from conveyor.store.step_logs import read_step_log

NOW = "2026-11-29 05:00:00"


def _to(db: Database, revision: str) -> None:
    downgrade(db, revision)


def test_0006_keeps_every_log_across_upgrade_and_downgrade(db_url: str) -> None:
    db = Database(db_url)
    try:
        _to(db, "0003")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO releases (id, app, sha, label, ref, commits, created_at, created_by)"
                    f" VALUES (1, 'web', 'abc', 'v1', 'main', '[]', '{NOW}', 'test')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO deployments (id, release_id, app, environment, state, queued_at, updated_at,"
                    f" created_by, summary, evidence) VALUES (1, 1, 'web', 'staging', 'failed', '{NOW}', '{NOW}',"
                    " 'test', '', '{}')"
                )
            )
            for step_id, log in ((1, "one\ntwo\n"), (2, "")):
                conn.execute(
                    text(
                        "INSERT INTO steps (id, deployment_id, kind, name, state, attempt, due_at, outcome, log,"
                        f" measurements, result) VALUES ({step_id}, 1, 'deploy', 'deploy', 'failed', 2, '{NOW}', '',"
                        " :log, '[]', '{}')"
                    ),
                    {"log": log},
                )
        upgrade(db)
        assert "log" not in {c["name"] for c in inspect(db.engine).get_columns("steps")}
        with db.read() as session:
            assert (read_step_log(session, 1), read_step_log(session, 2)) == ("one\ntwo\n", "")
        _to(db, "0003")
        with db.engine.connect() as conn:
            logs = dict(conn.execute(text("SELECT id, log FROM steps ORDER BY id")).all())
        assert logs == {1: "one\ntwo\n", 2: ""}
        assert "step_log_chunks" not in inspect(db.engine).get_table_names()
    finally:
        upgrade(db)
        with db.engine.begin() as conn:
            for table in ("step_log_chunks", "steps", "deployments", "releases"):
                conn.execute(text(f"DELETE FROM {table}"))
        db.dispose()
