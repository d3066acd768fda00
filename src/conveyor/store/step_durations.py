"""Step durations for the ``conveyor_step_duration_seconds`` histogram, counted as steps finish.

Each finished step adds one to the row of its kind and bucket (the first bound at or above its duration,
or the last row for longer ones) and its seconds to that row's total, in the transaction that records
its result. A scrape then reads a few rows per kind, however many steps the store has seen, and every
process reports the same numbers. Rows are added to in a fixed order, so two workers finishing steps at
once never wait on each other in a cycle. The rows hold bucket indexes, so changing ``BUCKETS`` takes a
migration that counts them again (revision 0003 shows how, from the steps table).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from conveyor.store.database import dialect_insert
from conveyor.store.tables import StepDuration

BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)  # seconds; then +Inf


def bucket_of(seconds: float) -> int:
    """The index of the first bound at or above ``seconds``; ``len(BUCKETS)`` for longer ones (+Inf)."""
    return bisect.bisect_left(BUCKETS, seconds)


def count_finished(session: Session, steps: Iterable[tuple[str, datetime | None, datetime]]) -> None:
    """Add steps that finished, given as (kind, started_at, finished_at); one never started adds nothing."""
    totals: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
    for kind, started, finished in steps:
        if started is None:
            continue
        seconds = max(0.0, (finished - started).total_seconds())
        total = totals[(kind, bucket_of(seconds))]
        total[0] += 1
        total[1] += seconds
    if not totals:
        return
    stmt = dialect_insert(session, StepDuration)
    table = StepDuration.__table__.c
    add = stmt.on_conflict_do_update(
        index_elements=[table.kind, table.bucket],
        set_={"steps": table.steps + stmt.excluded.steps, "seconds": table.seconds + stmt.excluded.seconds},
    )
    rows = [{"kind": k, "bucket": b, "steps": int(n), "seconds": s} for (k, b), (n, s) in sorted(totals.items())]
    session.execute(add, rows)
