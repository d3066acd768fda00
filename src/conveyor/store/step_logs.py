"""Step logs in the store: chunks appended by the runner, read back as text by everything that shows one.

The runner appends each attempt's log in chunks (:class:`LogFlush`, from :mod:`conveyor.engine.step_log`), within the
transaction that extends its lease or records its result, and deletes tail chunks that fell out of the
attempt's rolling tail. Nothing rewrites a chunk. :func:`read_step_log` is the one way to read a step's
log: the status views, the API and the CLI all go through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from conveyor.store.tables import StepLogChunk, insert_rows


@dataclass(frozen=True)
class LogChunk:
    seq: int  # order within one attempt of one step
    start: int  # characters of the attempt's log before this chunk, cut ones included
    text: str


@dataclass(frozen=True)
class LogFlush:
    """What one drain adds to the store, and which stored tail chunks (a ``seq`` range) fell out of the
    tail window and go."""

    chunks: list[LogChunk] = field(default_factory=list)
    drop: tuple[int, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.chunks or self.drop)


def append_step_logs(session: Session, flushes: Iterable[tuple[int, int, LogFlush]]) -> None:
    """Write the chunks of each ``(step_id, attempt, flush)`` and delete the ones the flush drops."""
    rows = []
    for step_id, attempt, flush in flushes:
        rows += [
            {"step_id": step_id, "attempt": attempt, "seq": c.seq, "start": c.start, "text": c.text}
            for c in flush.chunks
        ]
        if flush.drop is not None:
            first, last = flush.drop
            session.execute(
                delete(StepLogChunk).where(
                    StepLogChunk.step_id == step_id,
                    StepLogChunk.attempt == attempt,
                    StepLogChunk.seq.between(first, last),
                )
            )
    if rows:
        insert_rows(session, cast(Table, StepLogChunk.__table__), rows)


def read_step_log(session: Session, step_id: int) -> str:
    """The log of every attempt of a step, oldest first, with a line where characters were cut."""
    rows = session.execute(
        select(StepLogChunk.attempt, StepLogChunk.start, StepLogChunk.text)
        .where(StepLogChunk.step_id == step_id)
        .order_by(StepLogChunk.attempt, StepLogChunk.seq)
    )
    parts: list[str] = []
    attempt, end = None, 0
    for row in rows:
        if row.attempt != attempt:
            attempt, end = row.attempt, 0
        if row.start > end:
            parts.append(f"[... {row.start - end:,} characters cut ...]\n")
        parts.append(row.text)
        end = row.start + len(row.text)
    return "".join(parts)
