"""Sealing events into the hash chain, and reading the chain back to verify it (the rules are in
:mod:`conveyor.domain.audit`).

**When.** :func:`~conveyor.store.events.record_events` inserts events with one INSERT and notes their
ids on the session; :meth:`Database.write() <conveyor.store.database.Database.write>` calls :func:`seal`
as the last statement before it commits. Sealing reads the transaction's events back as stored (so the
hash covers exactly what a verifier will read, and events undone by a rolled-back savepoint drop out),
locks the chain's head row (``SELECT ... FOR UPDATE``), gives the events the next positions in id order,
hashes them in Python, and writes positions, hashes and the new head back (on PostgreSQL in one
statement, so the lock is held for two round trips and the commit).

**Why at commit.** Ids come from a sequence and commit out of order, so id order is not chain order:
the chain order is ``chain_seq``, handed out under the head's lock. Taking that lock last keeps it held
only for the few statements and the commit that follow, and means a transaction holding it never waits
for another lock, so it cannot deadlock with the row locks the orchestrator and the runner take. Two
transactions can never chain onto the same previous hash: the second waits for the first's head row and
reads its new value (PostgreSQL re-reads a row it waited for, even under READ COMMITTED). On SQLite,
writers are serialised by ``BEGIN IMMEDIATE`` already.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, select, text, update
from sqlalchemy.orm import Session

from conveyor.domain.audit import GENESIS, Anchor, ChainBreak, ChainWalk, EventContent, StoredEvent, chain_hash
from conveyor.store.tables import Event, EventChain

UNSEALED_INFO_KEY = "unsealed_event_ids"  # Session.info: ids this transaction inserted, to seal at commit
HEAD_ID = 1
EVENTS = cast(Table, Event.__table__)
# the table's columns, not the mapped class's: rows come back without the ORM's loading on top
CONTENT = tuple(
    EVENTS.c[name]
    for name in (
        "id",
        "kind",
        "app",
        "environment",
        "release_id",
        "deployment_id",
        "actor",
        "at",
        "message",
        "payload",
        "action",
        "reason",
    )
)


def note_unsealed(session: Session, event_ids: Sequence[int]) -> None:
    session.info.setdefault(UNSEALED_INFO_KEY, []).extend(event_ids)


def content(row: Row[*tuple[Any, ...]]) -> EventContent:
    m = row._mapping
    return EventContent(
        id=m["id"],
        kind=m["kind"],
        app=m["app"],
        environment=m["environment"],
        release_id=m["release_id"],
        deployment_id=m["deployment_id"],
        actor=m["actor"],
        at=m["at"],
        message=m["message"],
        payload=m["payload"] if m["payload"] is not None else {},
        action=m["action"],
        reason=m["reason"],
    )


def seal(session: Session) -> int:
    """Chain the events this transaction inserted onto the head; returns how many. Call it last."""
    ids = session.info.pop(UNSEALED_INFO_KEY, None)
    if not ids:
        return 0
    rows = session.execute(
        select(*CONTENT).where(EVENTS.c.id.in_(ids), EVENTS.c.chain_seq.is_(None)).order_by(EVENTS.c.id)
    ).all()
    if not rows:  # all undone by rolled-back savepoints
        return 0
    ids = [row.id for row in rows]
    canonical = [content(row).canonical() for row in rows]  # before the lock: keep its hold short
    first, previous = _lock_head(session)
    hashes = []
    for event in canonical:
        previous = chain_hash(previous, event)
        hashes.append(previous)
    seqs = list(range(first + 1, first + 1 + len(ids)))
    if session.get_bind().dialect.name == "postgresql":
        # one round trip while the lock is held: the head and every event in one statement
        session.execute(SEAL_POSTGRES, {"ids": ids, "seqs": seqs, "hashes": hashes, "seq": seqs[-1], "hash": previous})
    else:
        session.execute(  # one executemany on the table: the ORM's bulk UPDATE spent more on each row
            SEAL_SQLITE,
            [{"b_id": i, "b_seq": s, "b_hash": h} for i, s, h in zip(ids, seqs, hashes, strict=True)],
        )
        session.execute(update(EventChain).where(EventChain.id == HEAD_ID).values(seq=seqs[-1], hash=previous))
    return len(ids)


SEAL_SQLITE = (
    update(EVENTS)
    .where(EVENTS.c.id == bindparam("b_id"))
    .values(chain_seq=bindparam("b_seq"), chain_hash=bindparam("b_hash"))
)
SEAL_POSTGRES = text(
    "WITH head AS (UPDATE event_chain SET seq = :seq, hash = :hash WHERE id = 1) "
    "UPDATE events SET chain_seq = sealed.seq, chain_hash = sealed.hash "
    "FROM unnest(CAST(:ids AS INTEGER[]), CAST(:seqs AS INTEGER[]), CAST(:hashes AS VARCHAR[])) "
    "AS sealed(id, seq, hash) WHERE events.id = sealed.id"
)


def _lock_head(session: Session) -> tuple[int, str]:
    """The head's (position, hash), locked until commit; created at GENESIS when missing (a new or
    emptied database), tolerating another transaction creating it at the same moment."""
    stmt = select(EventChain.seq, EventChain.hash).where(EventChain.id == HEAD_ID).with_for_update()
    head = session.execute(stmt).first()
    if head is None:
        from conveyor.store.database import dialect_insert  # here: database imports this module

        session.execute(
            dialect_insert(session, EventChain)
            .values(id=HEAD_ID, seq=0, hash=GENESIS)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        head = session.execute(stmt).one()
    return int(head.seq), str(head.hash)


@dataclass(frozen=True)
class Verification:
    verified: int
    head_seq: int
    head_hash: str
    broken: ChainBreak | None
    kind: str | None = None  # of the event named by ``broken``
    at: str | None = None


def stored_events(session: Session, up_to: int, batch: int = 2000) -> Iterator[StoredEvent]:
    """Events at chain positions 1..``up_to`` in chain order, streamed in batches."""
    after = 0
    while after < up_to:
        rows = session.execute(
            select(*CONTENT, Event.chain_seq, Event.chain_hash)
            .where(Event.chain_seq > after, Event.chain_seq <= up_to)
            .order_by(Event.chain_seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield StoredEvent(content(row), row.chain_seq, row.chain_hash)
        after = rows[-1].chain_seq


def verify(session: Session, anchor: Anchor | None = None) -> Verification:
    """Walk the chain up to the head as it stands when the walk begins (events sealed meanwhile are for
    the next walk), then look for events that were never sealed (written around conveyor). With
    ``anchor``, the chain must also have that hash at that position."""
    head = session.execute(select(EventChain.seq, EventChain.hash).where(EventChain.id == HEAD_ID)).first()
    head_seq, head_hash = (int(head.seq), str(head.hash)) if head else (None, None)
    walk = ChainWalk(anchor)
    if head_seq is not None:
        for event in stored_events(session, head_seq):
            walk.step(event)
            if walk.broken is not None:
                break
    else:
        first = session.execute(select(*CONTENT, Event.chain_seq, Event.chain_hash).order_by(Event.id).limit(1)).first()
        if first is not None:
            walk.step(StoredEvent(content(first), first.chain_seq, first.chain_hash))
    if walk.broken is None:
        stray = session.execute(select(*CONTENT).where(Event.chain_seq.is_(None)).order_by(Event.id).limit(1)).first()
        if stray is not None:
            walk.step(StoredEvent(content(stray), None, None))
    broken = walk.finish(head_seq, head_hash)
    kind = at = None
    if broken is not None and broken.event_id is not None:
        named = session.get(Event, broken.event_id)
        if named is not None:
            kind, at = named.kind, named.at.isoformat()
    return Verification(walk.verified, head_seq or 0, head_hash or GENESIS, broken, kind, at)
