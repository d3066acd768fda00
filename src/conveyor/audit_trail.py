"""The audit trail as people and tools read it: operator actions listed newest first (``conveyor audit``,
``GET /api/audit``), and the hash chain verified (``conveyor audit verify``, ``GET /api/audit/verify``).

Both only read. The rules (which events are operator actions, how the chain is hashed) are in
:mod:`conveyor.domain.audit`; the sealing in :mod:`conveyor.store.chain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from conveyor.config.resolved import Config
from conveyor.domain.audit import Anchor
from conveyor.domain.moments import parse_moment
from conveyor.store.chain import verify
from conveyor.store.database import Database
from conveyor.store.tables import Event, Release

MAX_PAGE = 1000


class BadSince(ValueError):
    """A ``--since`` / ``since`` a person can fix; the message says what is accepted."""


def parse_since(text: str, now: datetime) -> datetime:
    """An ISO 8601 date or time (UTC unless it names an offset), or an age such as ``30m``, ``12h``,
    ``7d`` or ``2w`` before ``now`` (:mod:`conveyor.domain.moments`)."""
    try:
        return parse_moment(text, now, before=True)
    except ValueError as exc:
        raise BadSince(f"--since {exc}") from None


@dataclass(frozen=True)
class ActionPage:
    actions: list[dict[str, Any]]
    next_before: int | None  # pass as ``before`` for the next (older) page; None when this is the last

    def to_json(self) -> dict[str, Any]:
        return {"actions": self.actions, "next_before": self.next_before}


def operator_actions(
    db: Database,
    config: Config,
    *,
    since: datetime | None = None,
    app: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> ActionPage:
    """Operator actions newest first, at most ``limit``, older than event ``before`` when given."""
    if app is not None:
        app = config.app(app).name
    limit = max(1, min(limit, MAX_PAGE))
    stmt = (
        select(Event, Release.label)
        .outerjoin(Release, Release.id == Event.release_id)
        .where(Event.action.is_not(None))
        .order_by(Event.id.desc())
        .limit(limit + 1)
    )
    if app is not None:
        stmt = stmt.where(Event.app == app)
    if since is not None:
        stmt = stmt.where(Event.at >= since)
    if before is not None:
        stmt = stmt.where(Event.id < before)
    with db.read() as session:
        rows = session.execute(stmt).all()
    page = [action_json(event, label) for event, label in rows[:limit]]
    return ActionPage(page, page[-1]["id"] if len(rows) > limit else None)


def action_json(e: Event, release: str | None) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "actor": e.actor,
        "action": e.action,
        "kind": e.kind,
        "app": e.app,
        "environment": e.environment,
        "release": release,
        "deployment_id": e.deployment_id,
        "reason": e.reason,
        "message": e.message,
    }


def verify_chain(db: Database, anchor: Anchor | None = None) -> dict[str, Any]:
    """The chain walked from its first event to its head: ``ok``, how many events verified, the head,
    and where it first breaks (``broken``: the event, or null ``event_id`` for the head). With
    ``anchor``, the chain must still have that hash at that position."""
    with db.read() as session:
        result = verify(session, anchor)
    broken = None
    if result.broken is not None:
        b = result.broken
        broken = {"event_id": b.event_id, "seq": b.seq, "kind": result.kind, "at": result.at, "problem": b.problem}
    return {
        "ok": broken is None,
        "verified": result.verified,
        "head": {"seq": result.head_seq, "hash": result.head_hash},
        "broken": broken,
    }


def describe_verification(answer: dict[str, Any]) -> str:
    """One line for people: what verified, or where the chain breaks."""
    broken = answer.get("broken")
    if not broken:
        head = answer["head"]
        return f"verified {answer['verified']} event(s): the chain is intact (head {head['seq']}: {head['hash']})"
    if broken.get("event_id") is None:
        return f"chain broken at its head: {broken['problem']}"
    where = f"event #{broken['event_id']}"
    if broken.get("kind"):
        where += f" ({broken['kind']} at {broken['at']})"
    return f"chain broken at {where}: {broken['problem']}"
