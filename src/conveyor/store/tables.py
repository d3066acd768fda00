"""The tables: one per noun of the architecture (releases, deployments, steps and their attempts,
holds, locks, decisions, events, outbox, and what notifiers remember per release).

Only :mod:`conveyor.engine.orchestrator` changes a deployment's or step's status; everything else here
is read by queries or appended to (events, decisions). Times are stored as naive UTC and read back as
aware UTC (:class:`UTCDateTime`), so SQLite and PostgreSQL behave alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.sql import ColumnElement, bindparam
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.sql.visitors import InternalTraversal

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def insert_for(dialect: str, table: Any) -> SqliteInsert | PostgresInsert:
    """An INSERT for ``table`` in ``dialect`` (``"postgresql"`` or ``"sqlite"``), so a caller can add
    ``ON CONFLICT DO UPDATE`` (an upsert) the same way on both."""
    return postgres_insert(table) if dialect == "postgresql" else sqlite_insert(table)


class _ValueList(TypeDecorator[list[Any]]):
    """A list of values bound as one parameter: a PostgreSQL array, or JSON text that SQLite's
    ``json_each`` reads."""

    impl = Text
    cache_ok = True

    def __init__(self, item: TypeEngine[Any]) -> None:
        super().__init__()
        self.item = item

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(self.item))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return orjson.dumps(value).decode()


class Among(ColumnElement[bool]):
    """``column`` is one of ``values``, with the values bound as one parameter, however many there are
    (see :func:`among`)."""

    __visit_name__ = "among"
    inherit_cache = True
    _is_implicitly_boolean = True  # a condition of its own, not a column to compare with true
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], values: list[Any]) -> None:
        self.column = column
        self.values = bindparam(None, values, type_=_ValueList(column.type), unique=True)
        self.type = Boolean()


def among(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN values`` for the hundreds of ids, names or keys a busy pass asks about at once.

    ``column.in_(values)`` makes a parameter per value: a thousand ids were a thousand bound parameters
    to build, to key the statement cache with and to render, several times a pass. This binds the list
    once: ``= ANY(array)`` on PostgreSQL (typed as the column's array), ``IN (SELECT value FROM
    json_each(json))`` on SQLite (its JSON functions are built in since 3.38). Both look the values up
    by the column's index. Values are ints or strings."""
    return Among(column, list(values))


@compiles(Among)
def _among_sqlite(element: Among, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} IN (SELECT value FROM json_each({compiler.process(element.values, **kw)}))"


@compiles(Among, "postgresql")
def _among_postgres(element: Among, compiler: SQLCompiler, **kw: Any) -> str:
    # the driver's dialect casts the parameter to the column's array type (``%(p)s::INTEGER[]``)
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(element.values, **kw)})"


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (mappings with the same keys) into ``table`` with one executemany.

    On SQLite each value goes through its column's own bind processor (the conversion SQLAlchemy makes,
    a time converted once however many rows share it) and the rows straight to the driver: for the
    hundreds of events, decisions and steps a busy pass appends, SQLAlchemy's handling of each row's
    parameters cost more than SQLite's insert. Elsewhere it is ``session.execute(insert(table), rows)``.
    """
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        session.execute(insert(table), rows)
        return
    keys = tuple(rows[0])
    statement, processors, defaults = _sqlite_insert(conn.dialect, table, keys)
    given = [[row[key] for row in rows] for key in keys]
    given += [[default() for _ in rows] for default in defaults]
    columns = [
        values if convert is None else _converted(convert, values)
        for convert, values in zip(processors, given, strict=True)
    ]
    conn.exec_driver_sql(statement, list(zip(*columns, strict=True)))


def execute_rows(session: Session, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
    """Execute ``statement`` (an UPDATE or an upsert on a table, with bound parameters named by the keys
    of ``rows``) once per row, in one executemany.

    On SQLite the statement is compiled once per set of keys and each row's values go through their bind
    processors as in :func:`insert_rows`. ``statement`` must be built once (a module constant), not per
    call: it is what the compiled form is kept by. Elsewhere it is ``session.execute(statement, rows)``.
    """
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        session.execute(statement, rows)
        return
    keys = tuple(rows[0])
    sql, sources = _sqlite_statement(conn.dialect, statement, keys)
    columns = []
    for key, convert, constant in sources:
        if key is None:
            columns.append([constant] * len(rows))
            continue
        values = [row[key] for row in rows]
        columns.append(values if convert is None else _converted(convert, values))
    conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))


# id(statement), keys -> (the statement, kept so its id is not reused; its SQL; per parameter: the row key
# it comes from or None, its bind processor, or its constant value already converted)
_SQLITE_STATEMENTS: dict[tuple[int, tuple[str, ...]], tuple[Executable, str, list[tuple[str | None, Any, Any]]]] = {}


def _sqlite_statement(
    dialect: Dialect, statement: Executable, keys: tuple[str, ...]
) -> tuple[str, list[tuple[str | None, Any, Any]]]:
    cached = _SQLITE_STATEMENTS.get((id(statement), keys))
    if cached is not None and cached[0] is statement:
        return cached[1], cached[2]
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    if compiled.insert_prefetch or compiled.update_prefetch or "POSTCOMPILE" in compiled.string:
        raise ValueError("execute_rows takes statements with neither Python-side defaults nor expanding IN")
    sources: list[tuple[str | None, Any, Any]] = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name in keys:
            sources.append((name, convert, None))
        else:
            value = bind.effective_value
            sources.append((None, None, convert(value) if convert is not None and value is not None else value))
    _SQLITE_STATEMENTS[(id(statement), keys)] = (statement, compiled.string, sources)
    return compiled.string, sources


def _converted(convert: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """One column's values through its bind processor; a time a batch shares is converted once."""
    times: dict[datetime, Any] = {}
    out: list[Any] = []
    for value in values:
        if value is None:
            out.append(None)
        elif type(value) is datetime:  # only times: 1 and True are equal keys, but not the same JSON
            if value not in times:
                times[value] = convert(value)
            out.append(times[value])
        else:
            out.append(convert(value))
    return out


def _same(value: Any) -> Any:
    return value


# id(table), keys -> (the table, kept so its id is not reused; what _sqlite_insert returns)
_SQLITE_INSERTS: dict[tuple[int, tuple[str, ...]], tuple[Table, tuple[str, list[Any], list[Callable[[], Any]]]]] = {}


def _sqlite_insert(
    dialect: Dialect, table: Table, keys: tuple[str, ...]
) -> tuple[str, list[Any], list[Callable[[], Any]]]:
    """The INSERT for ``keys`` plus the columns left out that have a Python-side default, with a bind
    processor per column and a factory per default (compiled once per table and keys)."""
    cached = _SQLITE_INSERTS.get((id(table), keys))
    if cached is not None and cached[0] is table:
        return cached[1]
    defaults: list[Callable[[], Any]] = []
    columns = [table.c[key] for key in keys]
    for column in table.c:
        default = column.default
        if column.key in keys or default is None:
            continue
        arg: Any = getattr(default, "arg", None)
        if getattr(default, "is_scalar", False):
            defaults.append(functools.partial(_same, arg))
        elif getattr(default, "is_callable", False):
            defaults.append(functools.partial(arg, None))  # SQLAlchemy's wrapper takes an execution context
        else:
            raise ValueError(f"insert_rows cannot fill {table.name}.{column.key}'s default")
        columns.append(column)
    names = ", ".join(dialect.identifier_preparer.quote(c.name) for c in columns)
    statement = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names}) VALUES "
    statement += f"({', '.join('?' for _ in columns)})"
    prepared = (statement, [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns], defaults)
    _SQLITE_INSERTS[(id(table), keys)] = (table, prepared)
    return prepared


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("app", "sha"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(100), index=True)
    sha: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(200))
    ref: Mapped[str] = mapped_column(Text)
    previous_release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    commits: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    # from GitHub (a candidate): the pull requests it brings ({number, url}) and its compare page
    pull_requests: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    compare_url: Mapped[str | None] = mapped_column(Text)


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_app_env_state", "app", "environment", "state"),
        Index("ix_deployments_app_env_id", "app", "environment", "id"),  # the newest deployment per place
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    app: Mapped[str] = mapped_column(String(100))
    environment: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), index=True)
    # Idempotency: the same promotion or release trigger never creates two deployments.
    origin_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    queued_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    override: Mapped[str | None] = mapped_column(String(20))  # domain.model.Override: rollback | force
    # an operator's cancel of a running deployment: its holder stops the step at its next heartbeat
    cancel_requested_at: Mapped[datetime | None]
    baking_since: Mapped[datetime | None]  # bake tier: when its checks first passed
    bake_until: Mapped[datetime | None]  # bake tier: when it may succeed


class Step(Base):
    __tablename__ = "steps"
    __table_args__ = (Index("ix_steps_state_due", "state", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # fencing token: bumped at every claim
    due_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(Text, default="")
    measurements: Mapped[list[Any]] = mapped_column(default=list)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # its deployment was cancelled while it ran: the holder stops it, and it ends "cancelled"
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class StepAttempt(Base):
    """One run of a step by one worker. A re-run after a crash is a new row, never an overwrite."""

    __tablename__ = "step_attempts"
    __table_args__ = (UniqueConstraint("step_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(20), default="running")  # running|succeeded|failed|expired


class StepLogChunk(Base):
    """A piece of one step attempt's log, appended and never rewritten (:mod:`conveyor.store.step_logs`).
    ``start`` counts the characters of the attempt's log before it, so a gap between chunks shows what was
    cut; old tail chunks are deleted (:mod:`conveyor.engine.step_log`)."""

    __tablename__ = "step_log_chunks"

    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    start: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)


class StepDuration(Base):
    """How many finished steps of a kind fell in one histogram bucket, and their seconds: counted as steps
    finish (:mod:`conveyor.store.durations`), so a metrics scrape never reads every step."""

    __tablename__ = "step_durations"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # see BUCKETS
    steps: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)


class DeploymentDuration(Base):
    """How many deployments that started ended in an environment in a terminal state within one histogram
    bucket, and their seconds: counted as deployments end (:mod:`conveyor.store.durations`), so a metrics
    scrape never reads every deployment."""

    __tablename__ = "deployment_durations"

    environment: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # see DEPLOYMENT_BUCKETS
    deployments: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)


class Hold(Base):
    """A hold; ``origin`` names what outside raised it (``alertmanager:<fingerprint>:<environment>``), and at
    most one hold not lifted has a given origin: a repeated notification never makes a second one."""

    __tablename__ = "holds"
    __table_args__ = (
        Index(
            "ix_holds_open_origin",
            "origin",
            unique=True,
            sqlite_where=text("lifted_at IS NULL"),
            postgresql_where=text("lifted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    app: Mapped[str | None] = mapped_column(String(100), index=True)
    environment: Mapped[str | None] = mapped_column(String(100))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    since: Mapped[datetime]
    until: Mapped[datetime | None]
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lifted_at: Mapped[datetime | None] = mapped_column(index=True)
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    lift_reason: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str | None] = mapped_column(String(300))


class Lock(Base):
    """A named resource held by an active deployment; the primary key makes acquisition exclusive."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), index=True)
    acquired_at: Mapped[datetime]


class Placement(Base):
    """What runs in each (app, environment): written by the orchestrator alone, read by every view.

    ``release_id``/``deployment_id``: the current release, whose deploy step last succeeded there (it
    runs, whatever its checks said, unless ``health`` is stopped); ``health``: healthy | failing |
    checking | unknown, from its checks, or stopped (a later deploy stopped it, then failed);
    ``good_*``: the release that most recently passed every check there (the last good one).
    """

    __tablename__ = "placements"

    app: Mapped[str] = mapped_column(String(100), primary_key=True)
    environment: Mapped[str] = mapped_column(String(100), primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    health: Mapped[str] = mapped_column(String(20))
    since: Mapped[datetime]  # when the current release became current
    updated_at: Mapped[datetime]
    good_release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    good_deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    good_since: Mapped[datetime | None]  # when it last passed


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_app_env_id", "app", "environment", "id"),
        Index("ix_decisions_deployment_id", "deployment_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(100))
    environment: Mapped[str] = mapped_column(String(100))
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    verdict: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(String(100))
    summary: Mapped[str] = mapped_column(Text)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fingerprint: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class StandingDecision(Base):
    """The latest decision about no deployment (a promotion, a manual tier's wait) for each (app,
    environment): what a planner pass compares a new one with. Kept beside ``decisions`` because those
    grow with every release (each promotion is one) and are indexed by place in time order, so the latest
    of them per place cost a read of the place's whole history; this is one row per place."""

    __tablename__ = "standing_decisions"

    app: Mapped[str] = mapped_column(String(100), primary_key=True)
    environment: Mapped[str] = mapped_column(String(100), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


OPERATOR_ACTION = text("action IS NOT NULL")  # the events `conveyor audit` lists


class Event(Base):
    """Append-only audit record: who did what, when, why.

    ``action`` and ``reason`` are set on operator actions only (see :mod:`conveyor.domain.audit`).
    ``chain_seq`` and ``chain_hash`` seal the event into the hash chain: as it is inserted on SQLite,
    when its transaction commits on PostgreSQL (:mod:`conveyor.store.chain`); they are NULL only inside
    the PostgreSQL transaction that wrote it."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_operator_actions", "id", postgresql_where=OPERATOR_ACTION, sqlite_where=OPERATOR_ACTION),
        Index(
            "ix_events_operator_actions_app",
            "app",
            "id",
            postgresql_where=OPERATOR_ACTION,
            sqlite_where=OPERATOR_ACTION,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(50), index=True)
    app: Mapped[str | None] = mapped_column(String(100), index=True)
    environment: Mapped[str | None] = mapped_column(String(100))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    message: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    action: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    chain_seq: Mapped[int | None] = mapped_column(Integer, unique=True)
    chain_hash: Mapped[str | None] = mapped_column(String(64))


class EventChain(Base):
    """The head of the events' hash chain: the position and hash of the newest sealed event. One row
    (``id`` 1), locked by every transaction that seals events, so two never chain onto the same hash;
    it also shows when the newest events were deleted."""

    __tablename__ = "event_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class Outbox(Base):
    """A notification waiting to be delivered; written in the same transaction as its Event.

    ``state`` is ``pending`` until delivered (claimed rows stay ``pending`` under a lease), then
    ``delivered`` or, after too many attempts, ``failed``. ``attempts`` is also the fencing token of a
    claim. ``release_id`` is the ordering key: one notifier gets one release's rows in event order.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
        Index("ix_outbox_order", "notifier", "release_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    notifier: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    delivery_id: Mapped[str] = mapped_column(String(36), unique=True)  # X-Conveyor-Delivery, same on retries
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]

    event: Mapped[Event] = relationship()  # lets an outbox row be added before its event has an id


class NotifierMemory(Base):
    """What a notifier remembered about one release, e.g. the chat thread its first message started."""

    __tablename__ = "notifier_memory"

    notifier: Mapped[str] = mapped_column(String(100), primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class SourcePoll(Base):
    """What conveyor last saw when it polled an app's remote (``poll:``), and whose turn the last one was.

    ``turn_at`` is taken by one worker at a time (:mod:`conveyor.store.polls`), so several workers poll a
    remote once per interval between them; ``head`` is what the branch pointed at in the last answer;
    ``error`` and ``failing_since`` say why and since when the remote has not answered; ``failures`` counts
    failed polls ever (it only grows: a metric's counter).
    """

    __tablename__ = "source_polls"

    app: Mapped[str] = mapped_column(String(100), primary_key=True)
    turn_at: Mapped[datetime]  # when a worker last took this app's turn
    turn_by: Mapped[str] = mapped_column(String(200))
    polled_at: Mapped[datetime | None]  # when the last turn ended, answered or not
    answered_at: Mapped[datetime | None]  # when the remote last answered
    head: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)


class GitHubDelivery(Base):
    """One webhook delivery from GitHub, recorded by the request and worked on by the intake queue.

    ``delivery_id`` (``X-GitHub-Delivery``) is unique: a redelivery finds its row and does nothing more.
    ``state``: ``pending`` (also while claimed, under a lease; ``attempts`` is the fencing token), then
    ``done``, ``ignored`` (with ``note`` saying why) or ``failed`` after too many attempts.
    ``repository``, ``branch`` and ``sha``: what it was about, recorded when it is worked on (``conveyor
    deliveries``, ``conveyor why``).
    """

    __tablename__ = "github_deliveries"
    __table_args__ = (
        Index("ix_github_deliveries_state_next", "state", "next_attempt_at"),
        Index("ix_github_deliveries_finished", "finished_at"),  # pruning (conveyor.github.retention)
        Index("ix_github_deliveries_repository", "repository", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(100), unique=True)
    event: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)  # the raw JSON as signed
    received_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    repository: Mapped[str | None] = mapped_column(String(300))
    branch: Mapped[str | None] = mapped_column(String(300))
    sha: Mapped[str | None] = mapped_column(String(40))


class Candidate(Base):
    """A pushed commit of a GitHub app on its way to becoming a release: it waits for CI.

    ``state``: waiting | released | ci_failed | ci_timed_out | superseded. ``commits``: the pushed commits
    ({sha, message, author, email, login, pull_requests}); ``ci``: the required checks as last evaluated
    ({name: {state, url, source}}).
    """

    __tablename__ = "candidates"
    __table_args__ = (UniqueConstraint("app", "sha"), Index("ix_candidates_state", "state", "app"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(100))
    sha: Mapped[str] = mapped_column(String(40))
    branch: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(20))
    commits: Mapped[list[Any]] = mapped_column(default=list)
    pull_requests: Mapped[list[Any]] = mapped_column(default=list)
    compare_url: Mapped[str | None] = mapped_column(Text)
    repo_url: Mapped[str | None] = mapped_column(Text)
    ci: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    deadline_at: Mapped[datetime | None]  # CI must be green by then
    updated_at: Mapped[datetime]
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))


class CiResult(Base):
    """The newest result GitHub reported for one name (check run, status context, workflow, check suite's
    app) on one commit of one app; kept apart from candidates, so a result that arrives before its push
    is not lost."""

    __tablename__ = "ci_results"
    __table_args__ = (Index("ix_ci_results_received", "received_at"),)  # pruning (conveyor.github.retention)

    app: Mapped[str] = mapped_column(String(100), primary_key=True)
    sha: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))  # pending | success | failure
    url: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))  # check_run | status | workflow_run | check_suite
    reported_at: Mapped[datetime]  # GitHub's own time for it, so an older result never overwrites a newer
    received_at: Mapped[datetime | None]  # when conveyor stored it: what retention goes by (set on every write)


class ErrorProject(Base):
    """One app in one environment as the error intake knows it: ``id`` is the Sentry project id in its DSN
    and ``public_key`` the key its SDK sends (:mod:`conveyor.store.error_events`). ``raw_since``: raw
    events received before it were pruned, so counts before it come from the per-minute buckets."""

    __tablename__ = "error_projects"
    __table_args__ = (UniqueConstraint("app", "environment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(100))
    environment: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    raw_since: Mapped[datetime | None]


class ErrorIssue(Base):
    """Error events grouped by fingerprint (:mod:`conveyor.domain.error_groups`) within one project."""

    __tablename__ = "error_issues"
    __table_args__ = (
        UniqueConstraint("project_id", "fingerprint"),
        Index("ix_error_issues_last_seen", "last_seen"),  # pruning (conveyor.error_intake.retention)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("error_projects.id"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    culprit: Mapped[str] = mapped_column(Text, default="")
    level: Mapped[str] = mapped_column(String(20))
    first_seen: Mapped[datetime]
    first_release: Mapped[str | None] = mapped_column(String(200))  # the release that introduced it
    last_seen: Mapped[datetime]
    last_release: Mapped[str | None] = mapped_column(String(200))
    events: Mapped[int] = mapped_column(Integer)  # ever received (counts survive the raw events' pruning)
    last_spike_at: Mapped[datetime | None]  # the last error.spike recorded: one per issue per cooldown


class ErrorEvent(Base):
    """One error event as received (its JSON, verbatim), kept for ``errors.retention``."""

    __tablename__ = "error_events"
    __table_args__ = (Index("ix_error_events_project_received", "project_id", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("error_projects.id"))
    issue_id: Mapped[int] = mapped_column(ForeignKey("error_issues.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(index=True)
    release: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[str] = mapped_column(Text)


class ErrorCount(Base):
    """How many events of one issue (and release, ``""`` for none) arrived in one minute; kept for
    ``errors.counts_retention``, so rates and spikes never need the raw events."""

    __tablename__ = "error_counts"
    __table_args__ = (Index("ix_error_counts_project_minute", "project_id", "minute"),)

    issue_id: Mapped[int] = mapped_column(ForeignKey("error_issues.id"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    release: Mapped[str] = mapped_column(String(200), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("error_projects.id"))
    events: Mapped[int] = mapped_column(Integer)
