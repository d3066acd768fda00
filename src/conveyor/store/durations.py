"""Durations for the metrics' histograms, counted as steps finish and as deployments end.

Each finished step adds one to the row of its kind and bucket (the first bound at or above its duration,
or the last row for longer ones) and its seconds to that row's total, in the transaction that records
its result; each deployment that started and ended does the same in the row of its environment, terminal
state and bucket, in the transaction that ends it. A scrape then reads a few rows per kind or place,
however many steps and deployments the store has seen, and every process reports the same numbers. Rows
are added to in a fixed order, so two workers finishing at once never wait on each other in a cycle. The
rows hold bucket indexes, so changing the bounds takes a migration that counts them again (revisions
0003 and 0016 show how, from the steps and deployments tables).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from conveyor.store.database import dialect_insert
from conveyor.store.tables import DeploymentDuration, StepDuration

BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)  # steps, in seconds; then +Inf
DEPLOYMENT_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)  # deployments; then +Inf


def bucket_of(seconds: float, bounds: Sequence[float] = BUCKETS) -> int:
    """The index of the first bound at or above ``seconds``; ``len(bounds)`` for longer ones (+Inf)."""
    return bisect.bisect_left(bounds, seconds)


def count_finished(session: Session, steps: Iterable[tuple[str, datetime | None, datetime]]) -> None:
    """Add steps that finished, given as (kind, started_at, finished_at); one never started adds nothing."""
    _add(session, StepDuration, ("kind",), "steps", [((kind,), start, end) for kind, start, end in steps], BUCKETS)


def count_ended(session: Session, deployments: Iterable[tuple[str, str, datetime | None, datetime]]) -> None:
    """Add deployments that ended, given as (environment, terminal state, started_at, finished_at); one
    never started (superseded, or cancelled while it waited) adds nothing."""
    _add(
        session,
        DeploymentDuration,
        ("environment", "state"),
        "deployments",
        [((environment, state), start, end) for environment, state, start, end in deployments],
        DEPLOYMENT_BUCKETS,
    )


def _add(
    session: Session,
    model: Any,
    keys: tuple[str, ...],
    counter: str,
    items: list[tuple[tuple[str, ...], datetime | None, datetime]],
    bounds: Sequence[float],
) -> None:
    totals: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0.0])
    for key, started, finished in items:
        if started is None:
            continue
        seconds = max(0.0, (finished - started).total_seconds())
        total = totals[(*key, bucket_of(seconds, bounds))]
        total[0] += 1
        total[1] += seconds
    if not totals:
        return
    stmt = dialect_insert(session, model)
    table = model.__table__.c
    add = stmt.on_conflict_do_update(
        index_elements=[*(table[k] for k in keys), table.bucket],
        set_={counter: table[counter] + stmt.excluded[counter], "seconds": table.seconds + stmt.excluded.seconds},
    )
    rows = [
        {**dict(zip(keys, key[:-1], strict=True)), "bucket": key[-1], counter: int(n), "seconds": s}
        for key, (n, s) in sorted(totals.items())
    ]
    session.execute(add, rows)
