"""Opening what every command needs: the config and the database (migrated to the current schema)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conveyor.config import Config, load_config
from conveyor.notify.routing import install as install_router
from conveyor.store.database import Database
from conveyor.store.migrate import current_revision, head_revision, upgrade


@dataclass
class Opened:
    config: Config
    db: Database


def open_project(config_path: Path, *, migrate: bool = True) -> Opened:
    config = load_config(config_path)
    db = Database(config.database_url)
    db.ping()
    install_router(db, config)  # events this process writes notify whom the config says
    if migrate and current_revision(db) != head_revision():
        upgrade(db)
    return Opened(config, db)
