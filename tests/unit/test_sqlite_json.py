"""conveyor binds lists of ids as JSON that SQLite's ``json_each`` reads: a Python whose SQLite lacks the
JSON functions is refused in one line when the database is opened, not deep inside a planner pass."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conveyor.store import database
from conveyor.store.database import Database, DatabaseUnreachable


class _NoJson:
    def execute(self, sql: str) -> Any:
        raise sqlite3.OperationalError("no such table: json_each")

    def close(self) -> None:
        pass


def test_this_pythons_sqlite_has_json_functions() -> None:
    assert database._sqlite_json_problem() is None


def test_an_sqlite_without_json_functions_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(database.sqlite3, "connect", lambda *_: _NoJson())
    problem = database._sqlite_json_problem.__wrapped__()
    assert problem is not None
    assert "no JSON functions (no such table: json_each)" in problem and "SQLite 3.38 or newer" in problem

    monkeypatch.setattr(database, "_sqlite_json_problem", lambda: problem)
    with pytest.raises(DatabaseUnreachable, match="no JSON functions"):
        Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert not (tmp_path / "x.db").exists()
