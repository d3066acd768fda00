"""Revision 0002 (outbox leases, ordering key, delivery ids; notifier memory) on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from conveyor.store.database import Database
from conveyor.store.migrate import _alembic_config, current_revision, head_revision, upgrade
from conveyor.store.tables import Base


def test_the_migrated_schema_matches_the_tables(db: Database) -> None:
    assert current_revision(db) == head_revision()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_0002_downgrades_and_upgrades_again(db: Database) -> None:
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    columns = {c["name"] for c in inspect(db.engine).get_columns("outbox")}
    assert "delivery_id" not in columns and "notifier_memory" not in inspect(db.engine).get_table_names()
    upgrade(db)
    columns = {c["name"] for c in inspect(db.engine).get_columns("outbox")}
    assert {"release_id", "delivery_id", "lease_owner", "lease_expires_at"} <= columns
    assert current_revision(db) == head_revision()
