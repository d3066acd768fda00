"""Prometheus metrics, read from the store at scrape time.

Every number comes from the database when ``/metrics`` is scraped, never from this process's memory, so
several ``conveyor serve`` processes behind a load balancer report the same values and a restart loses
nothing. Each app gets its own :class:`~prometheus_client.CollectorRegistry`.

- ``conveyor_deployments_total{state}`` (gauge): deployments in the store by their current state.
- ``conveyor_step_duration_seconds{kind}`` (histogram): duration of every finished step in the store,
  counted into buckets as steps finish (:mod:`conveyor.store.step_durations`), so it is cumulative, as a
  Prometheus histogram must be, and a scrape costs the same however many steps the store has seen.
- ``conveyor_steps{state}`` (gauge): steps ``queued`` and ``running`` now.
- ``conveyor_holds_active`` (gauge): holds in force (not lifted, ``until`` not passed).
- ``conveyor_outbox_backlog`` (gauge): notifications waiting to be delivered (outbox rows ``pending``).
- ``conveyor_current_release{app,environment,release,health}`` (gauge, always 1): what runs in each place
  and its health, from the placement the orchestrator keeps (the same record as ``status``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from conveyor import views
from conveyor.clock import utc_now
from conveyor.domain.model import DeploymentState, StepState
from conveyor.store.database import Database
from conveyor.store.step_durations import BUCKETS
from conveyor.store.tables import Deployment, Hold, Outbox, Step, StepDuration


class StoreCollector(Collector):
    """One read transaction per scrape, yielding every conveyor metric."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self.db, self.clock = db, clock

    def describe(self) -> Iterator[Metric]:
        # Named without querying, so registering the collector never touches the database.
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        deployments, duration, steps, holds, outbox, current = _families()
        with self.db.read() as session:
            by_state = dict(session.execute(select(Deployment.state, func.count()).group_by(Deployment.state)).all())
            for state in DeploymentState:
                deployments.add_metric([state.value], float(by_state.get(state.value, 0)))
            for kind, buckets, total in _step_durations(session):
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
            for p in views.placements(session).values():
                current.add_metric([p.app, p.environment, p.label, p.health], 1.0)
        yield from (deployments, duration, steps, holds, outbox, current)


def _families() -> tuple[
    GaugeMetricFamily, HistogramMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily
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
        GaugeMetricFamily(
            "conveyor_current_release",
            "What runs in each app and environment (always 1), labelled with its release and health.",
            labels=["app", "environment", "release", "health"],
        ),
    )


def _step_durations(session: Session) -> Iterator[tuple[str, list[tuple[str, float]], float]]:
    """Per step kind: cumulative bucket counts and the sum of durations, from the counted rows."""
    per_kind: dict[str, dict[int, tuple[int, float]]] = {}
    for row in session.execute(
        select(StepDuration.kind, StepDuration.bucket, StepDuration.steps, StepDuration.seconds)
    ):
        per_kind.setdefault(row.kind, {})[row.bucket] = (row.steps, row.seconds)
    for kind in sorted(per_kind):
        counted = per_kind[kind]
        buckets, running = [], 0
        for index, bound in enumerate([*BUCKETS, None]):
            running += counted.get(index, (0, 0.0))[0]
            buckets.append(("+Inf" if bound is None else _bound(bound), float(running)))
        yield kind, buckets, float(sum(seconds for _, seconds in counted.values()))


def _bound(value: float) -> str:
    return repr(float(value))


def registry_for(db: Database) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(db))
    return registry
