"""Shared fixtures: real databases (SQLite always; PostgreSQL when CONVEYOR_TEST_POSTGRES_URL is set),
real git repositories and configs written as a user would write them.

PostgreSQL: on a user's machine the variable is unset and those tests skip; CI sets it, and then an
unreachable server fails the run instead of skipping. The schema is migrated once per session and the
tables are emptied before each test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from conveyor.store.tables import Base

POSTGRES_URL = os.environ.get("CONVEYOR_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("CONVEYOR_REQUIRE_POSTGRES") == "1"
_postgres_passed = 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REQUIRE_POSTGRES and not POSTGRES_URL:
        raise pytest.UsageError("CONVEYOR_REQUIRE_POSTGRES=1 but CONVEYOR_TEST_POSTGRES_URL is not set")
    if POSTGRES_URL:
        return
    skip = pytest.mark.skip(reason="PostgreSQL tests need CONVEYOR_TEST_POSTGRES_URL (CI sets it)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _postgres_passed
    if report.when == "call" and report.passed and "postgres" in report.keywords:
        _postgres_passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI PostgreSQL is mandatory: a run where no PostgreSQL test passed is a failure."""
    if REQUIRE_POSTGRES and exitstatus == 0 and _postgres_passed == 0:
        session.exitstatus = 1
        print("\nCONVEYOR_REQUIRE_POSTGRES=1 but no PostgreSQL test passed", flush=True)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Database]:
    assert POSTGRES_URL, "CONVEYOR_TEST_POSTGRES_URL is not set"
    db = Database(POSTGRES_URL)
    db.ping()  # unreachable: fail loudly, never skip, when the variable is set
    upgrade(db)
    yield db
    db.dispose()


def clear_tables(db: Database) -> None:
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database URL on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'conveyor.db'}"
        db = Database(url)
        upgrade(db)
        db.dispose()
        return url
    pg: Database = request.getfixturevalue("postgres_database")
    clear_tables(pg)
    assert POSTGRES_URL
    return POSTGRES_URL


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def postgres_url(postgres_database: Database) -> str:
    """An emptied PostgreSQL database, for tests that are about PostgreSQL alone (several processes)."""
    clear_tables(postgres_database)
    assert POSTGRES_URL
    return POSTGRES_URL


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[Database]:
    """The test's own handle on the emptied PostgreSQL database, closed however the test ends (an
    unclosed one is collected later, in some other test, as an unraisable ResourceWarning)."""
    db = Database(postgres_url)
    yield db
    db.dispose()
