"""Opening what a command needs: the config and the database, for reading or for writing.

Reading (``status``, ``why``, ``history``, ``notifications``) creates nothing: no SQLite file or folder,
no tables; the schema must be current (else "no conveyor schema at URL; run `conveyor db upgrade`"), and
``${VAR}`` secrets only the API and notifiers use need not be set. Writing (``serve``, ``worker``,
``release``, ``deploy``, ``promote``, ``unblock``) loads the whole config, installs notification routing
and prepares the schema (see :func:`conveyor.store.migrate.prepare_schema`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from conveyor.config import Config, load_config
from conveyor.notify.routing import install as install_router
from conveyor.store.database import Database
from conveyor.store.migrate import prepare_schema, require_current_schema


@dataclass
class Opened:
    config: Config
    db: Database


def open_for_reading(config_path: Path) -> Opened:
    config = load_config(config_path, reading=True)
    return _opened(config, Database(config.database_url, create=False), require_current_schema)


def open_for_writing(config_path: Path, *, notifying: bool = True) -> Opened:
    """With ``notifying=False``, for a write that records no event (``conveyor dsn`` storing a key): the
    config is read as for reading, so the notifiers' and the hooks' secrets need not be set."""
    config = load_config(config_path, reading=not notifying)
    db = Database(config.database_url)

    def prepare(db: Database) -> None:
        if notifying:
            install_router(db, config)  # events this process writes notify whom the config says
        prepare_schema(db)

    return _opened(config, db, prepare)


def _opened(config: Config, db: Database, prepare: Callable[[Database], None]) -> Opened:
    """``db`` reached and prepared, and closed when the command ends, however it ends."""
    try:
        db.ping()
        prepare(db)
    except BaseException:
        db.dispose()
        raise
    context = click.get_current_context(silent=True)
    if context is not None:
        context.find_root().call_on_close(db.dispose)
    return Opened(config, db)
