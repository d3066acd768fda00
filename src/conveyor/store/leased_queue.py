"""A leased queue: rows of one table that workers claim for a while, fenced by a token.

A row is *due* by the queue's own condition. A worker claims due rows in a write transaction (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL, so claimers pass each other; SQLite's ``BEGIN IMMEDIATE`` serialises
them) and takes a lease on each: the token column is bumped, the row is put in the *held* state, its
``lease_owner`` is the worker and its ``lease_expires_at`` a lease from now. Invariants:

- a due row is handed to one claimer at a time: two owners never hold the same row under the same token;
- every write about a held row is fenced on (id, token, owner, held state): a worker that lost its
  lease (it paused past it and the row was claimed again, or handed back) has its write refused;
- a lease that runs out makes the row claimable again, by its due condition or by a reaper.

What a row *means* (events, attempt rows, ordering, retries) stays with the queue's owner: steps
(:mod:`conveyor.engine.leases`) and outbox deliveries (:mod:`conveyor.notify.outbox`). A webhook intake
queue would be one more table with the same lease columns: ``LeasedQueue(Intake, fencing="attempts",
held="pending", due=...)``, claimed with :meth:`lock_due` + :meth:`take`, finished under :meth:`fence`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from conveyor.store.tables import among, execute_rows


class LeasedQueue:
    def __init__(
        self,
        table: Any,
        *,
        owner: str,
        lease: timedelta,
        fencing: str,
        held: str,
        due: Callable[[datetime], Sequence[ColumnElement[bool]]],
        order_by: Sequence[Any] = (),
    ) -> None:
        self.table, self.owner, self.lease = table, owner, lease
        self.token, self.held, self.due = getattr(table, fencing), held, due
        self.order_by = order_by or (table.id,)
        self._take_statements: dict[str | None, Any] = {}  # by take_all's first_taken: built once each

    def any_due(self, session: Session | Connection, now: datetime, *where: ColumnElement[bool]) -> bool:
        """A cheap read, so an idle worker does not open a write transaction on every poll."""
        return session.scalar(select(self.table.id).where(*self.due(now), *where).limit(1)) is not None

    def lock_due(self, session: Session, now: datetime, limit: int, *where: ColumnElement[bool]) -> list[Any]:
        """Up to ``limit`` due rows (also matching ``where``), locked against other claimers."""
        return self._lock(session, limit, *self.due(now), *where)

    def lock_expired(self, session: Session, now: datetime, limit: int) -> list[Any]:
        """Up to ``limit`` held rows whose lease ran out (for a reaper), locked like :meth:`lock_due`."""
        return self._lock(session, limit, self.table.state == self.held, self.table.lease_expires_at < now)

    def _lock(self, session: Session, limit: int, *where: ColumnElement[bool]) -> list[Any]:
        return list(session.scalars(self._locking(select(self.table), limit, session, *where)))

    def _locking(self, stmt: Any, limit: int, session: Session, *where: ColumnElement[bool]) -> Any:
        """``stmt`` for the first ``limit`` rows matching ``where``, locked against other claimers."""
        stmt = stmt.where(*where).order_by(*self.order_by).limit(limit)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True, of=self.table)
        return stmt

    def lock_due_rows(self, session: Session, now: datetime, limit: int, *columns: Any) -> list[Any]:
        """:meth:`lock_due` as plain rows of id, token and ``columns``, for :meth:`take_all`: no mapped
        objects to load and flush when a thousand rows are claimed at once."""
        stmt = select(self.table.id, self.token, *columns)
        return list(session.execute(self._locking(stmt, limit, session, *self.due(now))))

    def take_all(
        self, session: Session, rows: Sequence[tuple[int, int]], now: datetime, *, first_taken: str | None = None
    ) -> datetime:
        """Lease the locked (id, token) ``rows`` to this owner, each under its next token, in one
        statement; ``first_taken`` names a column set to ``now`` the first time a row is taken. Returns
        when the leases expire."""
        expires = now + self.lease
        if rows:
            params = [{"b_id": i, "b_token": n, "b_next": n + 1, "b_expires": expires, "b_now": now} for i, n in rows]
            execute_rows(session, self._taking(first_taken), params)
        return expires

    def _taking(self, first_taken: str | None) -> Any:
        """The statement :meth:`take_all` runs, built once per queue (and column)."""
        if first_taken in self._take_statements:
            return self._take_statements[first_taken]
        table = self.table.__table__
        leased: dict[str, Any] = {
            self.token.key: bindparam("b_next"),
            "state": self.held,
            "lease_owner": self.owner,
            "lease_expires_at": bindparam("b_expires", type_=table.c.lease_expires_at.type),
        }
        if first_taken is not None:
            column = table.c[first_taken]
            leased[first_taken] = func.coalesce(column, bindparam("b_now", type_=column.type))
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c[self.token.key] == bindparam("b_token"))
            .values(leased)
        )
        self._take_statements[first_taken] = statement
        return statement

    def take(self, row: Any, now: datetime) -> None:
        """Lease a locked row to this owner under a new token."""
        setattr(row, self.token.key, getattr(row, self.token.key) + 1)
        row.state, row.lease_owner, row.lease_expires_at = self.held, self.owner, now + self.lease

    def fence(self, row_id: int, token: int) -> tuple[ColumnElement[bool], ...]:
        """The rows still held by this owner under ``token``: none once the lease was lost."""
        t = self.table
        return (t.id == row_id, self.token == token, t.lease_owner == self.owner, t.state == self.held)

    def lock_held(self, session: Session, held: Iterable[tuple[int, int]], *columns: Any) -> dict[int, Any]:
        """The ``held`` (id, token) rows still ours, as rows of id, token and ``columns`` by id; on
        PostgreSQL locked until the transaction ends, so a batch of results is fenced in one read."""
        held, t = set(held), self.table
        stmt = select(t.id, self.token, *columns).where(
            among(t.id, {i for i, _ in held}), t.lease_owner == self.owner, t.state == self.held
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return {row[0]: row for row in session.execute(stmt) if (row[0], row[1]) in held}

    def extend(self, session: Session, held: Iterable[tuple[int, int]], now: datetime) -> set[int]:
        """Extend the leases of ``held`` (id, token) rows, fenced like every other write, in one statement
        (a worker running a thousand steps renews them all every few seconds); returns the ids no longer
        ours."""
        pairs = list(dict(held).items())
        if not pairs:
            return set()
        t = self.table
        stmt = (
            update(t)
            .where(tuple_(t.id, self.token).in_(pairs), t.lease_owner == self.owner, t.state == self.held)
            .values(lease_expires_at=now + self.lease)
            .returning(t.id)
        )
        kept = set(session.scalars(stmt.execution_options(synchronize_session=False)))
        return {i for i, _ in pairs if i not in kept}

    def hand_back(self, session: Session, held: Iterable[tuple[int, int]], *where: Any, **values: Any) -> list[int]:
        """End the leases of ``held`` rows (also matching ``where``), setting ``values`` (their result, or
        back to the queue); returns the ids that were still ours."""
        values |= {"lease_owner": None, "lease_expires_at": None}
        return [i for i, n in held if self._update(session, i, n, *where, **values)]

    def _update(self, session: Session, row_id: int, token: int, *where: Any, **values: Any) -> bool:
        stmt = update(self.table).where(*self.fence(row_id, token), *where).values(**values)
        result = session.execute(stmt.execution_options(synchronize_session=False))
        return bool(getattr(result, "rowcount", 0))
