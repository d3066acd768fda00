"""A hold past its ``until`` is lifted on the record, once, with an event that says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from conveyor.domain.model import HoldKind
from conveyor.engine.hold_expiry import EXPIRY_ACTOR, lift_expired_holds
from conveyor.store.database import Database
from conveyor.store.tables import Event, Hold

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _hold(db: Database, kind: HoldKind, until: datetime | None) -> int:
    with db.write() as s:
        return int(
            s.execute(
                insert(Hold)
                .values(kind=kind, environment="production", reason="release day", actor="cli", since=T0, until=until)
                .returning(Hold.id)
            ).scalar_one()
        )


def test_an_expired_freeze_is_lifted_once_with_an_event(db: Database) -> None:
    expired = _hold(db, HoldKind.FREEZE, T0 + timedelta(hours=1))
    later = _hold(db, HoldKind.FREEZE, T0 + timedelta(hours=3))
    forever = _hold(db, HoldKind.STOP, None)

    assert lift_expired_holds(db, T0 + timedelta(minutes=59)) == 0
    assert lift_expired_holds(db, T0 + timedelta(hours=2)) == 1
    assert lift_expired_holds(db, T0 + timedelta(hours=2)) == 0  # once only

    with db.read() as s:
        lifted = {h.id: h for h in s.scalars(select(Hold))}
        events = list(s.scalars(select(Event).where(Event.kind == "hold.lifted")))
    assert lifted[expired].lifted_by == EXPIRY_ACTOR and lifted[expired].lifted_at is not None
    assert "expired" in (lifted[expired].lift_reason or "")
    assert lifted[later].lifted_at is None and lifted[forever].lifted_at is None
    assert [e.payload["hold_id"] for e in events] == [expired]
