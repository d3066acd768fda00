"""Prometheus metrics, read from the store at scrape time.

Every number comes from the database when ``/metrics`` is scraped, never from this process's memory, so
several ``conveyor serve`` processes behind a load balancer report the same values and a restart loses
nothing. Each app gets its own :class:`~prometheus_client.CollectorRegistry`.

- ``conveyor_deployments_total{state}`` (gauge): deployments in the store by their current state.
- ``conveyor_step_duration_seconds{kind}`` (histogram): duration of every finished step in the store,
  bucketed by one aggregate query (so it is cumulative, as a Prometheus histogram must be).
- ``conveyor_steps{state}`` (gauge): steps ``queued`` and ``running`` now.
- ``conveyor_holds_active`` (gauge): holds in force (not lifted, ``until`` not passed).
- ``conveyor_outbox_backlog`` (gauge): notifications waiting to be delivered (outbox rows ``pending``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Float, case, cast, func, literal_column, or_, select
from sqlalchemy.orm import Session

from conveyor.clock import utc_now
from conveyor.domain.model import DeploymentState, StepState
from conveyor.store.database import Database
from conveyor.store.tables import Deployment, Hold, Outbox, Step

STEP_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
FINISHED_STEP_STATES = [s.value for s in StepState if s.terminal]


class StoreCollector(Collector):
    """One read transaction per scrape, yielding every conveyor metric."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self.db, self.clock = db, clock

    def describe(self) -> Iterator[Metric]:
        # Named without querying, so registering the collector never touches the database.
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        deployments, duration, steps, holds, outbox = _families()
        with self.db.read() as session:
            by_state = dict(session.execute(select(Deployment.state, func.count()).group_by(Deployment.state)).all())
            for state in DeploymentState:
                deployments.add_metric([state.value], float(by_state.get(state.value, 0)))
            for kind, buckets, total in _step_durations(session, self.db.dialect):
                duration.add_metric([kind], buckets, total)
            queued_or_running = dict(
                session.execute(
                    select(Step.state, func.count())
                    .where(Step.state.in_([StepState.QUEUED.value, StepState.RUNNING.value]))
                    .group_by(Step.state)
                ).all()
            )
            for step_state in (StepState.QUEUED.value, StepState.RUNNING.value):
                steps.add_metric([step_state], float(queued_or_running.get(step_state, 0)))
            now = self.clock()
            holds.add_metric(
                [],
                float(
                    session.scalar(
                        select(func.count())
                        .select_from(Hold)
                        .where(Hold.lifted_at.is_(None), or_(Hold.until.is_(None), Hold.until > now))
                    )
                    or 0
                ),
            )
            backlog = session.scalar(select(func.count()).select_from(Outbox).where(Outbox.state == "pending"))
            outbox.add_metric([], float(backlog or 0))
        yield from (deployments, duration, steps, holds, outbox)


def _families() -> tuple[
    GaugeMetricFamily, HistogramMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily
]:
    return (
        GaugeMetricFamily(
            "conveyor_deployments_total", "Deployments in the store by their current state.", labels=["state"]
        ),
        HistogramMetricFamily(
            "conveyor_step_duration_seconds",
            "Duration of finished steps (every finished step in the store).",
            labels=["kind"],
        ),
        GaugeMetricFamily("conveyor_steps", "Steps queued or running now.", labels=["state"]),
        GaugeMetricFamily("conveyor_holds_active", "Holds in force: not lifted, and their until not passed."),
        GaugeMetricFamily("conveyor_outbox_backlog", "Notifications waiting in the outbox (state pending)."),
    )


def _seconds_between(start: Any, end: Any, dialect: str) -> ColumnElement[float]:
    if dialect == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return cast((func.julianday(end) - func.julianday(start)) * literal_column("86400.0"), Float)


def _step_durations(session: Session, dialect: str) -> Iterator[tuple[str, list[tuple[str, float]], float]]:
    """Per step kind: cumulative bucket counts, the count and the sum of durations, in one query."""
    seconds = _seconds_between(Step.started_at, Step.finished_at, dialect)
    columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in STEP_BUCKETS]
    rows = session.execute(
        select(Step.kind, func.count(), func.coalesce(func.sum(seconds), 0.0), *columns)
        .where(Step.state.in_(FINISHED_STEP_STATES), Step.started_at.is_not(None), Step.finished_at.is_not(None))
        .group_by(Step.kind)
        .order_by(Step.kind)
    ).all()
    for kind, count, total, *counts in rows:
        buckets = [(_bound(b), float(c or 0)) for b, c in zip(STEP_BUCKETS, counts, strict=True)]
        buckets.append(("+Inf", float(count)))
        yield kind, buckets, float(total or 0.0)


def _bound(value: float) -> str:
    return repr(float(value))


def registry_for(db: Database) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(db))
    return registry
