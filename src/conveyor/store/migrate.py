"""Schema migrations with Alembic; the same revisions run on SQLite and PostgreSQL.

``upgrade(db)`` runs at the start of ``conveyor serve`` and ``conveyor worker`` and from
``conveyor db upgrade``. Concurrent starts are safe: on PostgreSQL an advisory lock serialises them;
on SQLite the migration runs inside one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from conveyor.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATE_LOCK_KEY = 7_305_012


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
