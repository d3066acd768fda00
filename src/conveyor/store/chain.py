"""Appending events and sealing them into the hash chain, and reading the chain back to verify it (the
rules are in :mod:`conveyor.domain.audit`).

**Ids first.** :func:`append` takes the new events' ids before inserting them (on SQLite the next rowids,
which nobody else can take while this transaction holds the database's only write lock; on PostgreSQL
from the table's sequence), so it hashes the events from the values it writes: the canonical form of a
value and of that value read back are the same text, and a verifier reads them back.

**When, on SQLite.** Writers are serialised by ``BEGIN IMMEDIATE``, so the head cannot move under a
transaction that writes: :func:`append` chains the events onto the head as it inserts them, with their
positions and hashes in the same INSERT, and moves the head in the same transaction. A savepoint rolled
back undoes its events and its move of the head together.

**When, on PostgreSQL.** Writers run side by side, and ids come from a sequence and commit out of order,
so id order is not chain order: the chain order is ``chain_seq``, handed out under the head's lock.
:meth:`Database.write() <conveyor.store.database.Database.write>` calls :func:`seal` as the last statement
before it commits. Sealing keeps the events the transaction still holds (those undone by a rolled-back
savepoint drop out), locks the chain's head row (``SELECT ... FOR UPDATE``), gives the events the next
positions in id order and writes positions, hashes and the new head back in one statement, so the lock
is held for two round trips and the commit. Taking that lock last means a transaction holding it never
waits for another lock, so it cannot deadlock with the row locks the orchestrator and the runner take.
Two transactions can never chain onto the same previous hash: the second waits for the first's head row
and reads its new value (PostgreSQL re-reads a row it waited for, even under READ COMMITTED).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, func, select, text, update
from sqlalchemy.orm import Session

from conveyor.domain.audit import (
    GENESIS,
    Anchor,
    ChainBreak,
    ChainWalk,
    EventContent,
    StoredEvent,
    canonical_json,
    chain_hash,
)
from conveyor.store.tables import Event, EventChain, insert_for, insert_rows

UNSEALED_INFO_KEY = "unsealed_events"  # Session.info: (id, canonical JSON) of events to seal at commit
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


def append(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert events (``rows``: every column of the events table but ``id``, ``chain_seq`` and
    ``chain_hash``) and return their ids, ascending in the order of ``rows``."""
    ids = _next_ids(session, len(rows))
    canonical = [canonical_json({"id": i, **row}) for i, row in zip(ids, rows, strict=True)]
    if session.get_bind().dialect.name == "postgresql":
        insert_rows(session, EVENTS, [{**row, "id": i} for i, row in zip(ids, rows, strict=True)])
        session.info.setdefault(UNSEALED_INFO_KEY, []).extend(zip(ids, canonical, strict=True))
        return ids
    first, previous = _lock_head(session)  # SQLite: this transaction is the only writer
    chained = []
    for seq, (i, row, event) in enumerate(zip(ids, rows, canonical, strict=True), start=first + 1):
        previous = chain_hash(previous, event)
        chained.append({**row, "id": i, "chain_seq": seq, "chain_hash": previous})
    insert_rows(session, EVENTS, chained)
    session.execute(update(EventChain).where(EventChain.id == HEAD_ID).values(seq=first + len(ids), hash=previous))
    return ids


def _next_ids(session: Session, count: int) -> list[int]:
    if session.get_bind().dialect.name == "postgresql":
        return sorted(session.scalars(NEXT_IDS_POSTGRES, {"n": count}))
    newest = session.scalar(select(func.max(EVENTS.c.id))) or 0
    return list(range(newest + 1, newest + 1 + count))


NEXT_IDS_POSTGRES = text("SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, :n)")


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
    """Chain the events this transaction inserted and still holds onto the head; returns how many. Call
    it last. Only PostgreSQL leaves events to seal: on SQLite :func:`append` chained them already."""
    pending: list[tuple[int, bytes]] = session.info.pop(UNSEALED_INFO_KEY, None) or []
    if not pending:
        return 0
    kept = set(session.scalars(select(EVENTS.c.id).where(EVENTS.c.id.in_([i for i, _ in pending]))))
    events = sorted((i, c) for i, c in pending if i in kept)
    if not events:  # all undone by rolled-back savepoints
        return 0
    first, previous = _lock_head(session)
    hashes = []
    for _, event in events:
        previous = chain_hash(previous, event)
        hashes.append(previous)
    ids = [i for i, _ in events]
    seqs = list(range(first + 1, first + 1 + len(ids)))
    # one round trip while the lock is held: the head and every event in one statement
    session.execute(SEAL_POSTGRES, {"ids": ids, "seqs": seqs, "hashes": hashes, "seq": seqs[-1], "hash": previous})
    return len(ids)


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
        session.execute(
            insert_for(session.get_bind().dialect.name, EventChain)
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
