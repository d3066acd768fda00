"""Read commands create nothing, need no writer's secrets, and fail in one line; writers prepare the schema
(SQLite in place, PostgreSQL only through ``conveyor db upgrade``)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from conveyor.cli.errors import friendly_errors
from conveyor.store import migrate
from conveyor.store.database import Database
from conveyor.store.migrate import current_revision, head_revision
from tests.cli.conftest import BASE_CONFIG, Project, write_project
from tests.conftest import POSTGRES_URL

READS = [("status",), ("why", "web"), ("history", "web"), ("notifications",)]


def downgrade(url: str, revision: str) -> None:
    """Put the schema at ``url`` back to ``revision``, as an older conveyor left it."""
    db = Database(url)
    try:
        migrate.downgrade(db, revision)
    finally:
        db.dispose()


def no_schema(url: str) -> str:
    return f"error: no conveyor schema at {url}; run `conveyor db upgrade`"


@pytest.mark.parametrize("read", READS, ids=lambda r: r[0])
def test_a_read_on_a_fresh_project_creates_no_database(project: Project, read: tuple[str, ...]) -> None:
    result = project.run(*read)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == no_schema(f"sqlite:///{project.root / 'conveyor.db'}")
    assert not (project.root / "conveyor.db").exists()


@pytest.mark.parametrize("read", READS, ids=lambda r: r[0])
def test_a_read_of_a_missing_folder_creates_no_folder(project: Project, read: tuple[str, ...]) -> None:
    url = f"sqlite:///{project.root / 'no' / 'such' / 'x.db'}"
    result = project.run(*read, env={"CONVEYOR_DATABASE_URL": url})
    assert (result.exit_code, result.stderr.strip()) == (1, no_schema(url))
    assert not (project.root / "no").exists()


def test_a_read_of_an_empty_sqlite_file_leaves_it_empty(project: Project) -> None:
    empty = project.root / "empty.db"
    empty.touch()
    url = f"sqlite:///{empty}"
    result = project.run("status", env={"CONVEYOR_DATABASE_URL": url})
    assert (result.exit_code, result.stderr.strip()) == (1, no_schema(url))
    assert empty.stat().st_size == 0


def test_a_read_of_a_schema_that_is_behind_names_db_upgrade(project: Project) -> None:
    project.ok("db", "upgrade")
    db = project.root / "conveyor.db"
    downgrade(f"sqlite:///{db}", "0001")
    result = project.run("status")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: the conveyor schema at sqlite:///{db} is behind (revision 0001, this conveyor needs "
        f"{head_revision()}); run `conveyor db upgrade`"
    )


def test_after_db_upgrade_reads_work(project: Project) -> None:
    assert f"created the conveyor schema (revision {head_revision()})" in project.ok("db", "upgrade").output
    assert "conveyor status" in project.ok("status").output


def test_db_upgrade_says_which_revisions_it_went_through(project: Project) -> None:
    project.ok("db", "upgrade")
    db = project.root / "conveyor.db"
    downgrade(f"sqlite:///{db}", "0013")
    said = project.ok("db", "upgrade").output
    assert f"upgraded from revision 0013 to {head_revision()}; it is up to date" in said
    assert f"is up to date (revision {head_revision()})" in project.ok("db", "upgrade").output


def test_writers_create_and_upgrade_the_embedded_sqlite_database(project: Project) -> None:
    project.ok("release", "web")  # creates conveyor.db
    db = project.root / "conveyor.db"
    downgrade(f"sqlite:///{db}", "0002")
    project.work()  # upgrades in place
    database = Database(f"sqlite:///{db}")
    try:
        assert current_revision(database) == head_revision()
    finally:
        database.dispose()
    assert "succeeded" in project.ok("status").output


# -- one clear line, never a traceback ----------------------------------------------------------------


def test_a_missing_table_is_one_line_not_a_traceback(project: Project) -> None:
    project.ok("db", "upgrade")
    with sqlite3.connect(project.root / "conveyor.db") as conn:
        conn.execute("DROP TABLE placements")
    result = project.run("status")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        "error: the database does not have the schema conveyor expects (no such table: placements); "
        "run `conveyor db upgrade`"
    )
    assert "Traceback" not in result.output


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_an_in_memory_database_is_refused_in_one_line(project: Project, url: str) -> None:
    for command in (("status",), ("release", "web"), ("db", "upgrade")):
        result = project.run(*command, env={"CONVEYOR_DATABASE_URL": url})
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("error: database_url names an in-memory SQLite database"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_check_reports_an_in_memory_database_url_at_its_place(tmp_path: Path) -> None:
    project = write_project(tmp_path, "database_url: 'sqlite:///:memory:'\n" + BASE_CONFIG)
    result = project.run("check")
    assert result.exit_code == 2
    assert f"{project.config}:1:15: database_url names an in-memory SQLite database" in result.output


@pytest.mark.parametrize(
    ("driver_error", "line"),
    [
        ("database is locked", "error: the database is busy (database is locked): another process holds it; try again"),
        (
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
            "error: lost the connection to the database (server closed the connection unexpectedly)",
        ),
    ],
)
def test_database_errors_escape_as_one_line(driver_error: str, line: str) -> None:
    @click.command()
    @friendly_errors
    def read() -> None:
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError(driver_error))

    result = CliRunner().invoke(read, [])
    assert (result.exit_code, result.stderr.strip()) == (1, line)


# -- secrets only writers use ----------------------------------------------------------------------------

SECRETS_CONFIG = (
    BASE_CONFIG.replace("teams: {publishing: {notify: []}}", "teams: {publishing: {notify: [hook]}}")
    + """\
notifiers:
  hook: {type: webhook, url: "${HOOK_URL}", secret: "${HOOK_SECRET}"}
api:
  tokens:
    - {name: ci, token: "${CONVEYOR_CI_TOKEN}"}
"""
)
WRITER_SECRETS = {
    "HOOK_URL": "http://127.0.0.1:9/hook",
    "HOOK_SECRET": "hook-secret-0123456789",
    "CONVEYOR_CI_TOKEN": "ci-token-0123456789abcdef",
}


@pytest.fixture
def secret_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    for name in WRITER_SECRETS:
        monkeypatch.delenv(name, raising=False)
    project = write_project(tmp_path, SECRETS_CONFIG)
    writer: dict[str, str | None] = dict(WRITER_SECRETS)
    result = project.run("release", "web", env=writer)
    assert result.exit_code == 0, result.output
    return project


@pytest.mark.parametrize("read", READS, ids=lambda r: r[0])
def test_reads_need_no_notifier_or_api_secrets(secret_project: Project, read: tuple[str, ...]) -> None:
    result = secret_project.run(*read)
    assert result.exit_code == 0, result.output
    assert "HOOK_SECRET" not in result.output


def test_check_and_writers_still_report_a_missing_secret(secret_project: Project) -> None:
    for command in (("check",), ("release", "web"), ("db", "upgrade")):
        result = secret_project.run(*command)
        if command == ("db", "upgrade"):  # it needs only the database
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2, (command, result.output)
        assert "environment variable 'HOOK_SECRET' is not set" in result.output


def test_reads_still_check_the_rest_of_the_config(secret_project: Project) -> None:
    broken = SECRETS_CONFIG.replace("repo: ./repos/web,", "repo: ./repos/web, tier: sometimes,")
    secret_project.config.write_text(broken)
    result = secret_project.run("status")
    assert result.exit_code == 2
    assert "tier" in result.output


# -- PostgreSQL: reads create nothing; writers refuse a schema that is not current -------------------------


@pytest.fixture
def empty_postgres_schema() -> Iterator[tuple[str, str]]:
    """A URL whose search_path is a new, empty PostgreSQL schema (dropped afterwards)."""
    assert POSTGRES_URL
    name = f"empty_{uuid.uuid4().hex[:12]}"
    engine = create_engine(POSTGRES_URL, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{name}", name
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
        engine.dispose()


def tables_in(schema: str) -> list[str]:
    assert POSTGRES_URL
    engine = create_engine(POSTGRES_URL, poolclass=NullPool)
    try:
        return inspect(engine).get_table_names(schema=schema)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_reads_and_workers_refuse_an_empty_database_until_db_upgrade(
    project: Project, empty_postgres_schema: tuple[str, str]
) -> None:
    url, schema = empty_postgres_schema
    env: dict[str, str | None] = {"CONVEYOR_DATABASE_URL": url}
    safe = make_url(url).render_as_string(hide_password=True)
    commands = [("status",), ("why", "web"), ("history", "web"), ("worker", "--exit-when-idle"), ("release", "web")]
    for command in commands:
        result = project.run(*command, env=env)
        assert (result.exit_code, result.stderr.strip()) == (1, no_schema(safe)), (command, result.output)
    assert tables_in(schema) == []
    assert project.run("db", "upgrade", env=env).exit_code == 0
    assert "alembic_version" in tables_in(schema)
    assert project.run("release", "web", env=env).exit_code == 0
    assert project.run("status", env=env).exit_code == 0


@pytest.mark.postgres
def test_postgres_workers_refuse_a_schema_that_is_behind(
    project: Project, empty_postgres_schema: tuple[str, str]
) -> None:
    url, _ = empty_postgres_schema
    env: dict[str, str | None] = {"CONVEYOR_DATABASE_URL": url}
    assert project.run("db", "upgrade", env=env).exit_code == 0
    downgrade(url, "0002")
    result = project.run("worker", "--exit-when-idle", env=env)
    assert result.exit_code == 1
    assert "is behind (revision 0002" in result.stderr and "run `conveyor db upgrade`" in result.stderr
    assert project.run("db", "upgrade", env=env).exit_code == 0
    assert project.run("release", "web", env=env).exit_code == 0  # a writer, on the current schema


def test_db_upgrade_refuses_a_schema_newer_than_it_knows_in_one_line(project: Project) -> None:
    project.ok("db", "upgrade")
    db = Database(f"sqlite:///{project.root / 'conveyor.db'}")
    try:
        with db.write() as session:
            session.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    finally:
        db.dispose()
    result = project.run("db", "upgrade")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: the conveyor schema at sqlite:///{project.root / 'conveyor.db'} is at revision 0999, which this "
        f"conveyor does not know (it knows up to {head_revision()}): use a newer conveyor"
    ]
