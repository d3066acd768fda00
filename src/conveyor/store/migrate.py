"""Schema migrations with Alembic; the same revisions run on SQLite and PostgreSQL.

Who migrates:

- ``conveyor db upgrade`` applies every pending revision, on either backend (creating a SQLite file);
- commands that write (``serve``, ``worker``, ``release``, ...) call :func:`prepare_schema`: the embedded
  SQLite default is created or upgraded in place, so it just works; on PostgreSQL, where many processes
  on many machines share the database, a schema that is not current is refused with the command to run,
  so N workers starting together never race a migration and a new conveyor never changes a shared
  schema behind the backs of older ones still running;
- commands that read (``status``, ``why``, ``history``, ``notifications``) call
  :func:`require_current_schema` and never create or change anything.

Concurrent upgrades are safe: on PostgreSQL an advisory lock serialises them; on SQLite the migration runs
inside one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from conveyor.store.database import Database, SchemaNotReady, no_schema_message

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATE_LOCK_KEY = 7_305_012


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:  # a read: no write lock
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Apply the migrations up to ``revision``; returns the revision found under the migration lock
    (None: there was no schema, this call made it), so of several processes upgrading at once exactly
    one sees what was there before. A schema newer than this conveyor knows is refused
    (:class:`SchemaNotReady`: "use a newer conveyor"), as every other command refuses it."""
    problem = schema_problem(db)
    if problem is not None and problem[0] == "unknown":
        raise SchemaNotReady(problem[1])
    with _migrating(db) as cfg:
        found = MigrationContext.configure(cfg.attributes["connection"]).get_current_revision()
        command.upgrade(cfg, revision)
    return found


def downgrade(db: Database, revision: str) -> None:
    """Put the schema back to ``revision``, as an older conveyor left it (tests, and undoing an upgrade)."""
    with _migrating(db) as cfg:
        command.downgrade(cfg, revision)


@contextmanager
def _migrating(db: Database) -> Iterator[AlembicConfig]:
    """One transaction for the whole migration, serialised by an advisory lock on PostgreSQL.

    On SQLite, altering a column rebuilds its table (copy, drop, rename), which foreign keys referencing
    it would refuse; they are switched off around the transaction (SQLite ignores the pragma inside
    one) and the data is checked against them before it commits."""
    cfg = _alembic_config()
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection if not db.is_postgres else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if db.is_postgres:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
                cfg.attributes["connection"] = conn
                yield cfg
                if raw is not None:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left rows that break foreign keys: {broken[:5]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def schema_problem(db: Database) -> tuple[str, str] | None:
    """None when the schema in ``db`` is current; else what is wrong (``missing``, ``behind`` or
    ``unknown``, a revision newer than this conveyor) and a sentence naming what to run."""
    current, head = current_revision(db), head_revision()
    if current == head:
        return None
    if current is None:
        return "missing", no_schema_message(db.safe_url)
    known = {script.revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    if current in known:
        return "behind", (
            f"the conveyor schema at {db.safe_url} is behind (revision {current}, this conveyor needs {head}); "
            "run `conveyor db upgrade`"
        )
    return "unknown", (
        f"the conveyor schema at {db.safe_url} is at revision {current}, which this conveyor does not know "
        f"(it knows up to {head}): use a newer conveyor"
    )


def require_current_schema(db: Database) -> None:
    """Raise :class:`SchemaNotReady` unless the schema is current; reads nothing but the revision."""
    problem = schema_problem(db)
    if problem is not None:
        raise SchemaNotReady(problem[1])


def prepare_schema(db: Database) -> None:
    """For the commands that write: upgrade the embedded SQLite database in place (creating it), or
    insist that a shared PostgreSQL one is current (see the module docstring)."""
    problem = schema_problem(db)
    if problem is None:
        return
    kind, message = problem
    if db.is_postgres or kind == "unknown":
        raise SchemaNotReady(message)
    upgrade(db)
