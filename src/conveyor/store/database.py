"""Connecting to the store: SQLite embedded by default, PostgreSQL for several processes and machines.

Every write transaction on SQLite starts with ``BEGIN IMMEDIATE`` so two writers never interleave
(the runner's claim relies on it); read transactions start deferred. On PostgreSQL, claims use
``FOR UPDATE SKIP LOCKED`` and planner passes take an advisory lock.

A process can stall mid-transaction (a paused VM, ``SIGSTOP``, a long GC pause) while holding row locks
or the planner lock. On PostgreSQL every connection therefore carries
``idle_in_transaction_session_timeout``: the server ends a transaction left idle that long and frees its
locks, so one stalled worker cannot stop every other from claiming or planning. The woken process finds
its connection closed; its late writes are fenced like any other.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session

from conveyor.config.database_url import database_url_problem
from conveyor.store.chain import seal
from conveyor.store.events import ROUTER_INFO_KEY, NotificationRouter
from conveyor.store.tables import insert_for

PLANNER_LOCK_KEY = 7_305_011  # advisory lock id for planner passes (PostgreSQL)
# How long PostgreSQL lets a conveyor transaction sit idle before ending it (see the module docstring).
# Transactions here last milliseconds; a planner pass holds its lock's transaction for the pass, well
# under a second even for hundreds of apps. An operator may set their own value in the URL's options.
IDLE_TRANSACTION_TIMEOUT = 10.0
IDLE_TIMEOUT_SETTING = "idle_in_transaction_session_timeout"

log = logging.getLogger(__name__)


class DatabaseUnreachable(RuntimeError):
    """The database could not be opened or reached; the message says which and why."""


class SchemaNotReady(DatabaseUnreachable):
    """The database has no conveyor schema, or not the one this conveyor needs; the message says what to run."""


def no_schema_message(safe_url: str) -> str:
    return f"no conveyor schema at {safe_url}; run `conveyor db upgrade`"


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@functools.cache
def _sqlite_json_problem() -> str | None:
    """Why this Python's SQLite cannot serve conveyor, or None: the store binds lists of ids as JSON that
    ``json_each`` reads (:func:`conveyor.store.tables.among`)."""
    try:
        with closing(sqlite3.connect(":memory:")) as probe:
            probe.execute("SELECT value FROM json_each('[1]')").fetchall()
    except sqlite3.OperationalError as exc:
        return (
            f"this Python's SQLite ({sqlite3.sqlite_version}) has no JSON functions ({exc}); conveyor needs"
            " SQLite 3.38 or newer, or one built with JSON1"
        )
    return None


def _sqlite_setup(engine: Engine, *, create: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")  # first, so the pragmas below wait rather than fail
        if create:  # WAL is a property of the file, set by whoever created it; a reader changes nothing
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """One engine plus the transaction helpers every other module uses.

    With ``create`` False (the read commands) a SQLite file that does not exist is not created, nor its
    folder: :class:`SchemaNotReady` says so instead.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        idle_transaction_timeout: float = IDLE_TRANSACTION_TIMEOUT,
        create: bool = True,
    ) -> None:
        problem = database_url_problem(url)
        if problem is not None:
            raise DatabaseUnreachable(problem)
        self.url = url
        self.create = create
        try:
            self._connect(url, pool_size, idle_transaction_timeout)
        except (ArgumentError, ImportError, OSError, NoSuchModuleError) as exc:
            raise DatabaseUnreachable(f"cannot open the database at {self.safe_url}: {_first_line(exc)}") from exc
        if self.dialect == "sqlite":
            sqlite_json_problem = _sqlite_json_problem()
            if sqlite_json_problem is not None:
                raise DatabaseUnreachable(sqlite_json_problem)
        self._planner_mutex = threading.Lock()
        # who hears about the events written here; see conveyor.notify.routing.install
        self.router: NotificationRouter | None = None
        self._sqlite_writer: AbstractContextManager[object] = (
            threading.RLock() if self.dialect == "sqlite" else nullcontext()
        )

    def _connect(self, url: str, pool_size: int, idle_transaction_timeout: float) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if not self.create and not Path(database).is_file():
                raise SchemaNotReady(no_schema_message(self.safe_url))
            if self.create:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 4)
        else:
            # Transactions are short, so steps queue for a connection rather than each holding one: a
            # process stays within pool_size + max_overflow connections however many steps it runs, and
            # many workers fit under PostgreSQL's default max_connections of 100.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size // 2, pool_timeout=60, pool_pre_ping=True)
            kwargs["connect_args"] = {
                "options": _with_idle_timeout(parsed.query.get("options"), idle_transaction_timeout)
            }
        self.engine = create_engine(url, json_serializer=json_text, json_deserializer=json_value, **kwargs)
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine, create=self.create)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise DatabaseUnreachable(f"cannot reach the database at {self.safe_url}: {_first_line(exc)}") from exc

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (BEGIN IMMEDIATE on SQLite); commits on success, rolls back on error.

        SQLite allows one writer at a time; writers of this process queue on a mutex instead of in
        SQLite's busy handler, which sleeps in steps of up to 100 ms and would add that to every
        contended write (a hundred steps finishing together). Other processes still meet the busy
        handler, as they must.

        The events the transaction recorded are sealed into the audit chain as its last statements,
        right before the commit (see :mod:`conveyor.store.chain`).
        """
        with (
            self._sqlite_writer,
            self.engine.connect() as conn,
            Session(bind=conn, expire_on_commit=False, info={ROUTER_INFO_KEY: self.router}) as session,
            session.begin(),
        ):
            yield session
            seal(session)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (deferred on SQLite); always rolled back."""
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            session = Session(bind=conn, expire_on_commit=False)
            try:
                yield session
            finally:
                session.close()  # ends the transaction; loaded objects stay readable, detached

    @contextmanager
    def peek(self) -> Iterator[Connection]:
        """A read-only transaction on a bare connection, for a statement or two asked on every tick (is
        anything due, has anything changed): a Session's bookkeeping cost more than such a query."""
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            yield conn

    @contextmanager
    def planning(self) -> Iterator[bool]:
        """Serialise planner passes across threads and, on PostgreSQL, across processes and machines.

        Yields whether this caller may plan. It never waits for another process: when one is planning,
        its pass covers everyone's changes, and the caller simply tries again on its next tick.
        """
        if not self._planner_mutex.acquire(blocking=False):
            yield False
            return
        try:
            if not self.is_postgres:
                yield True
                return
            with self.engine.connect() as conn:
                # Transaction-scoped, so it is freed with the transaction: by us after the pass, or by the
                # server's idle timeout if this process stalls mid-pass (a session lock would stay held
                # by a paused process and stop every other worker from planning until it woke).
                acquired = bool(
                    conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": PLANNER_LOCK_KEY}).scalar()
                )
                try:
                    yield acquired
                finally:
                    _end_quietly(conn)
        finally:
            self._planner_mutex.release()

    def in_batches(self, delete_some: Callable[[Session], int], batch: int, max_batches: int) -> None:
        """Run ``delete_some`` in one short transaction after another while it deletes a whole ``batch``,
        at most ``max_batches`` times: a backlog never holds the writer lock for long, and the next run
        goes on where this one stopped."""
        for _ in range(max_batches):
            with self.write() as session:
                if delete_some(session) < batch:
                    return

    def dispose(self) -> None:
        self.engine.dispose()


def json_text(value: Any) -> str:
    """JSON columns' text, by orjson: a busy pass writes tens of thousands of payloads, results and
    reasons, and the standard library took ten times as long for each. What orjson refuses (an integer
    wider than 64 bits, say) is written by the standard library, as before."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def json_value(text: str | bytes) -> Any:
    """A JSON column's value; the standard library reads what orjson refuses (``NaN``, which older
    conveyors could write to SQLite)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _with_idle_timeout(options: str | tuple[str, ...] | None, seconds: float) -> str:
    """libpq ``options`` carrying the idle-transaction timeout, unless the operator's URL sets its own."""
    given = " ".join(options) if isinstance(options, tuple) else (options or "")
    if IDLE_TIMEOUT_SETTING in given:
        return given
    return f"{given} -c {IDLE_TIMEOUT_SETTING}={round(seconds * 1000)}".strip()


def _end_quietly(conn: Connection) -> None:
    """End the planner lock's transaction. If the server already ended it (this process stalled past the
    idle timeout), the lock is already free and the pass's writes stand on their own re-checks: say so."""
    try:
        conn.rollback()
    except DBAPIError as exc:
        log.warning("the planner lock was released by the database before the pass ended: %s", _first_line(exc))


def dialect_insert(session: Session, table: Any) -> SqliteInsert | PostgresInsert:
    """An INSERT for ``table`` in the session's dialect (see :func:`~conveyor.store.tables.insert_for`)."""
    return insert_for(session.get_bind().dialect.name, table)
