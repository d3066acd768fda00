"""Pruning the error store: raw events after ``errors.retention``, per-minute counts after
``errors.counts_retention`` (a chore of every conductor, :mod:`conveyor.engine.chores`).

Deletes go in batches of a few thousand rows, one short transaction each, so a backlog (a retention
shortened, a worker that was down) never holds the writer lock for long; a run stops after ``max_batches``
and the next run goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.store.database import Database
from conveyor.store.error_events import PRUNE_BATCH, prune, prune_cutoffs

ERROR_PRUNE_INTERVAL = 300.0  # seconds between runs


class ErrorRetention:
    def __init__(
        self, config: Config, db: Database, clock: Callable[[], datetime] = utc_now, max_batches: int = 20
    ) -> None:
        self.config, self.db, self.clock, self.max_batches = config, db, clock, max_batches

    def __call__(self) -> bool:
        raw, counts = prune_cutoffs(self.clock(), self.config.errors.retention, self.config.errors.counts_retention)
        self.db.in_batches(lambda s: prune(s, raw_before=raw, counts_before=counts), PRUNE_BATCH, self.max_batches)
        return False  # nothing the planner reads
