"""The record of polled remotes (``source_polls``): whose turn it is, and what the remote last answered.

Every worker runs the poll chore, but a remote should be asked once per interval, not once per worker:
:func:`take_turn` lets exactly one worker take an app's turn (an insert that does nothing on conflict,
then an update guarded by the time of the last turn, which one transaction wins). :func:`record_turn`
writes what that turn saw and says whether the remote's state (answering or failing) changed, so a
failure is logged once per change of state across every worker, not once per turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from conveyor.store.database import Database, dialect_insert
from conveyor.store.tables import SourcePoll

NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # the turn of a row made before any worker took one
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Turn:
    """The outcome of asking for a turn: ``mine``, or the time of the turn another worker took."""

    mine: bool
    taken_at: datetime


@dataclass(frozen=True)
class PollRecord:
    """What conveyor last saw of one app's remote (a row of ``source_polls``, detached)."""

    app: str
    turn_at: datetime
    turn_by: str
    polled_at: datetime | None
    answered_at: datetime | None
    head: str | None
    error: str | None
    failing_since: datetime | None
    failures: int


def take_turn(db: Database, app: str, now: datetime, every: float, owner: str) -> Turn:
    """Take ``app``'s turn if nobody took one in the last ``every`` seconds."""
    with db.write() as session:
        session.execute(
            dialect_insert(session, SourcePoll.__table__)
            .values(app=app, turn_at=NEVER, turn_by="", failures=0)
            .on_conflict_do_nothing()
        )
        taken = session.execute(
            update(SourcePoll)
            .where(SourcePoll.app == app, SourcePoll.turn_at <= now - timedelta(seconds=every))
            .values(turn_at=now, turn_by=owner)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return Turn(True, now)
        turn_at = session.scalar(select(SourcePoll.turn_at).where(SourcePoll.app == app))
        return Turn(False, turn_at or now)


def record_turn(db: Database, app: str, now: datetime, *, head: str | None, error: str | None) -> PollRecord:
    """Record a turn that answered ``head`` (``error`` None) or failed with ``error``; returns the record as
    it was before, so the caller can tell a change of state (failing since, answering again) from a repeat."""
    with db.write() as session:
        row = session.get(SourcePoll, app, with_for_update=True)
        if row is None:  # the row is made by take_turn; a turn without one still records what it saw
            row = SourcePoll(app=app, turn_at=now, turn_by="", failures=0)
            session.add(row)
            session.flush()
        before = _record(row)
        row.polled_at = now
        if error is None:
            row.answered_at, row.head, row.error, row.failing_since = now, head, None, None
        else:
            row.error = error[:MAX_ERROR_CHARS]
            row.failing_since = row.failing_since or now
            row.failures = (row.failures or 0) + 1
        return before


def poll_records(db: Database, apps: list[str] | None = None) -> dict[str, PollRecord]:
    with db.read() as session:
        stmt = select(SourcePoll)
        if apps is not None:
            stmt = stmt.where(SourcePoll.app.in_(apps))
        return {row.app: _record(row) for row in session.scalars(stmt)}


def _record(row: SourcePoll) -> PollRecord:
    return PollRecord(
        row.app,
        row.turn_at,
        row.turn_by,
        row.polled_at,
        row.answered_at,
        row.head,
        row.error,
        row.failing_since,
        row.failures or 0,
    )
