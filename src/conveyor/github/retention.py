"""Pruning what the GitHub intake keeps (the ``github-retention`` chore of every conductor).

A webhook delivery is kept with GitHub's whole body, so a busy organisation's deliveries grow by
gigabytes a month; CI results grow with every commit CI runs on, pull requests' included. After
``github.retention`` (default 14 days):

- a delivery that was worked on (done, ignored or given up) is deleted; one still pending never is;
- a CI result is deleted unless an open candidate (waiting for CI, or failed or timed out and so still
  releasable by a newer result) is for its commit. A decided candidate keeps the results it was decided
  on in its own row, so ``why`` and the API show the same as before.

Candidates themselves are kept: they are small, and they are the history of why each push was or was
not released. Deletes go in batches of a few thousand rows, one short transaction each, like the error
store's (:mod:`conveyor.error_intake.retention`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select, tuple_
from sqlalchemy.orm import Session

from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.github.deliveries import PENDING
from conveyor.github.intake import OPEN
from conveyor.store.database import Database
from conveyor.store.tables import Candidate, CiResult, GitHubDelivery

GITHUB_PRUNE_INTERVAL = 300.0  # seconds between runs
PRUNE_BATCH = 2000


def prune(session: Session, before: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete up to ``batch`` finished deliveries and ``batch`` CI results older than ``before`` that no
    open candidate waits on; returns how many rows went (call again while it returns ``batch`` or more)."""
    old_deliveries = (
        select(GitHubDelivery.id)
        .where(GitHubDelivery.finished_at < before, GitHubDelivery.state != PENDING)
        .limit(batch)
    )
    deliveries = session.execute(delete(GitHubDelivery).where(GitHubDelivery.id.in_(old_deliveries.scalar_subquery())))
    waited_on = exists().where(Candidate.app == CiResult.app, Candidate.sha == CiResult.sha, Candidate.state.in_(OPEN))
    old_results = select(CiResult.app, CiResult.sha, CiResult.name).where(CiResult.received_at < before, ~waited_on)
    results = session.execute(
        delete(CiResult).where(
            tuple_(CiResult.app, CiResult.sha, CiResult.name).in_(old_results.limit(batch).scalar_subquery())
        )
    )
    return max(int(getattr(deliveries, "rowcount", 0) or 0), int(getattr(results, "rowcount", 0) or 0))


class GitHubRetention:
    def __init__(
        self,
        config: Config,
        db: Database,
        clock: Callable[[], datetime] = utc_now,
        *,
        batch: int = PRUNE_BATCH,
        max_batches: int = 20,
    ) -> None:
        self.config, self.db, self.clock, self.batch, self.max_batches = config, db, clock, batch, max_batches

    def __call__(self) -> bool:
        if self.config.github is None:
            return False
        before = self.clock() - timedelta(seconds=self.config.github.retention)
        self.db.in_batches(lambda s: prune(s, before, self.batch), self.batch, self.max_batches)
        return False  # nothing the planner reads
