"""Holds whose ``until`` has passed are lifted, with an event, so everyone hears that a freeze ended.

A hold past its ``until`` already stops nothing (:func:`conveyor.domain.holds.stopping` ignores it); this
chore makes the record say so: ``lifted_at`` is set, ``lifted_by`` is ``conveyor`` and a ``hold.lifted``
event (which notifies like any other) gives the reason. Workers race for the same rows harmlessly: each
row is locked (``SKIP LOCKED`` on PostgreSQL) and re-read as still open before it is lifted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from conveyor.store.database import Database
from conveyor.store.events import lift_hold
from conveyor.store.tables import Hold

EXPIRY_ACTOR = "conveyor"
BATCH = 100


def lift_expired_holds(db: Database, now: datetime) -> int:
    """Lift every open hold whose ``until`` is at or before ``now``; the number lifted."""
    due = (Hold.lifted_at.is_(None), Hold.until.is_not(None), Hold.until <= now)
    with db.read() as session:
        if session.scalar(select(Hold.id).where(*due).limit(1)) is None:
            return 0  # the usual case: no write transaction at all
    with db.write() as session:
        stmt = select(Hold).where(*due).order_by(Hold.id).limit(BATCH)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        holds = list(session.scalars(stmt))
        for hold in holds:
            assert hold.until is not None
            lift_hold(session, hold, now, EXPIRY_ACTOR, f"expired: its until ({hold.until.isoformat()}) passed")
        return len(holds)


def expiry_chore(db: Database, clock: Callable[[], datetime]) -> Callable[[], bool]:
    """The chore's body: lifting a hold can let a start go ahead, so a lift asks for a re-plan."""
    return lambda: lift_expired_holds(db, clock()) > 0
