"""Prometheus metrics, read from the store at scrape time.

Every number comes from the database when ``/metrics`` is scraped, never from this process's memory, so
several ``conveyor serve`` processes behind a load balancer report the same values and a restart loses
nothing. Each app gets its own :class:`~prometheus_client.CollectorRegistry`.

Counters only grow, because what they count never changes once it is counted: a deployment in a terminal
state stays in it, and a notification delivered or given up stays so. Gauges are what is true now. Series
per place are bounded by apps x environments (x hold kinds), whatever the history.

- ``conveyor_deployments_total{state}`` (counter): deployments that ended, by terminal state.
- ``conveyor_deployments_in_flight{state}`` (gauge): deployments not ended yet, by state.
- ``conveyor_deployment_duration_seconds{environment, state}`` (histogram): ``finished_at - started_at``
  of every deployment that started and ended, by environment and terminal state, counted into buckets as
  deployments end (:mod:`conveyor.store.durations`).
- ``conveyor_step_duration_seconds{kind}`` (histogram): duration of every finished step in the store,
  counted into buckets as steps finish (:mod:`conveyor.store.durations`).
- ``conveyor_steps{state}`` (gauge): steps ``queued`` and ``running`` now.
- ``conveyor_place_state{app, environment, state}`` (gauge, always 1): the state of the newest deployment
  in each place (``none`` before the first); one series per (app, environment).
- ``conveyor_place_health{app, environment, health}`` (gauge, always 1): each place's health, from
  :func:`placement_health`; one series per (app, environment).
- ``conveyor_place_holds{app, environment, kind}`` (gauge): holds in force on each place, by kind.
- ``conveyor_holds_active`` (gauge): holds in force (not lifted, ``until`` not passed).
- ``conveyor_notifications_pending`` (gauge): notifications waiting to be delivered.
- ``conveyor_notifications_delivered_total`` and ``conveyor_notifications_failed_total`` (counters):
  notifications delivered, and given up after their last attempt.
- ``conveyor_current_release{app,environment,release,health}`` (gauge, always 1): what runs in each place
  and its health, from the placement the orchestrator keeps (the same record as ``status``).
- ``conveyor_step_timeouts_total`` (counter): steps failed by the engine for running past their
  ``step_timeout`` (``step.timed_out`` events).
- ``conveyor_notifiers_disabled_total`` (counter): notifiers disabled in a process because their plugin
  raised (``notifier.disabled`` events).
- ``conveyor_poll_failures_total{app}`` (counter), ``conveyor_poll_failing{app}`` (gauge, 1 while the
  remote fails) and ``conveyor_poll_last_answer_timestamp_seconds{app}`` (gauge, Unix time of the last
  answer): for each app with ``poll``, from ``source_polls`` (:mod:`conveyor.sources.poll`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from conveyor import views
from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.domain.model import DeploymentState, HoldKind, StepState
from conveyor.notify.outbox import DELIVERED, FAILED, PENDING
from conveyor.store.database import Database
from conveyor.store.durations import BUCKETS, DEPLOYMENT_BUCKETS
from conveyor.store.tables import Deployment, DeploymentDuration, Event, Hold, Outbox, SourcePoll, Step, StepDuration


class StoreCollector(Collector):
    """Per scrape: one read transaction for the store's counts, and the status read model for the places."""

    def __init__(self, db: Database, config: Config, clock: Callable[[], datetime] = utc_now) -> None:
        self.db, self.config, self.clock = db, config, clock

    def describe(self) -> Iterator[Metric]:
        # Named without querying, so registering the collector never touches the database.
        yield from _Families().all()

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        with self.db.read() as session:
            _deployments(session, families)
            _steps(session, families)
            _holds_and_notifications(session, families, self.clock())
            _faults(session, families)
            _polls(session, families, [a.name for a in self.config.apps.values() if a.poll is not None])
        _places(views.status(self.db, self.config), families, self.clock())
        yield from families.all()


class _Families:
    def __init__(self) -> None:
        self.deployments = CounterMetricFamily(
            "conveyor_deployments", "Deployments that ended, by terminal state.", labels=["state"]
        )
        self.in_flight = GaugeMetricFamily(
            "conveyor_deployments_in_flight", "Deployments not ended yet, by state.", labels=["state"]
        )
        self.deployment_duration = HistogramMetricFamily(
            "conveyor_deployment_duration_seconds",
            "Duration of deployments that started and ended (finished_at - started_at).",
            labels=["environment", "state"],
        )
        self.step_duration = HistogramMetricFamily(
            "conveyor_step_duration_seconds",
            "Duration of finished steps (every finished step in the store).",
            labels=["kind"],
        )
        self.steps = GaugeMetricFamily("conveyor_steps", "Steps queued or running now.", labels=["state"])
        self.place_state = GaugeMetricFamily(
            "conveyor_place_state",
            "1 for the state of the newest deployment of each app in each environment (none before the first).",
            labels=["app", "environment", "state"],
        )
        self.place_health = GaugeMetricFamily(
            "conveyor_place_health",
            "1 for the health of each app in each environment (healthy, failing, checking, unknown, stopped).",
            labels=["app", "environment", "health"],
        )
        self.current_release = GaugeMetricFamily(
            "conveyor_current_release",
            "What runs in each app and environment (always 1), labelled with its release and health.",
            labels=["app", "environment", "release", "health"],
        )
        self.place_holds = GaugeMetricFamily(
            "conveyor_place_holds",
            "Holds in force on each app in each environment, by kind.",
            labels=["app", "environment", "kind"],
        )
        self.holds = GaugeMetricFamily(
            "conveyor_holds_active", "Holds in force: not lifted, and their until not passed."
        )
        self.pending = GaugeMetricFamily(
            "conveyor_notifications_pending", "Notifications waiting to be delivered (outbox rows pending)."
        )
        self.delivered = CounterMetricFamily("conveyor_notifications_delivered", "Notifications delivered.")
        self.failed = CounterMetricFamily(
            "conveyor_notifications_failed", "Notifications given up after their last attempt (or too old)."
        )

        # events that say something went wrong in a plugin, counted by their kind
        self.step_timeouts = CounterMetricFamily(
            "conveyor_step_timeouts", "Steps failed for running past their step_timeout (step.timed_out events)."
        )
        self.notifiers_disabled = CounterMetricFamily(
            "conveyor_notifiers_disabled",
            "Notifiers disabled in a process because their plugin raised (notifier.disabled events).",
        )

        # polled remotes (apps with `poll`)
        self.poll_failures = CounterMetricFamily(
            "conveyor_poll_failures", "Polls of an app's remote that failed (git ls-remote or fetch).", labels=["app"]
        )
        self.poll_failing = GaugeMetricFamily(
            "conveyor_poll_failing", "1 while polling an app's remote fails, else 0.", labels=["app"]
        )
        self.poll_answered = GaugeMetricFamily(
            "conveyor_poll_last_answer_timestamp_seconds",
            "Unix time of the last answer from an app's polled remote.",
            labels=["app"],
        )

    def all(self) -> list[Metric]:
        return list(vars(self).values())


def _deployments(session: Session, families: _Families) -> None:
    by_state = dict(session.execute(select(Deployment.state, func.count()).group_by(Deployment.state)).all())
    for state in DeploymentState:
        family = families.deployments if state.terminal else families.in_flight
        family.add_metric([state.value], float(by_state.get(state.value, 0)))
    durations = cast(
        Select[Any],
        select(
            DeploymentDuration.environment,
            DeploymentDuration.state,
            DeploymentDuration.bucket,
            DeploymentDuration.deployments,
            DeploymentDuration.seconds,
        ),
    )
    for (environment, ended), buckets, total in _histogram(session, durations, DEPLOYMENT_BUCKETS):
        families.deployment_duration.add_metric([environment, ended], buckets, total)


def _steps(session: Session, families: _Families) -> None:
    step_rows = cast(
        Select[Any], select(StepDuration.kind, StepDuration.bucket, StepDuration.steps, StepDuration.seconds)
    )
    for (kind,), buckets, total in _histogram(session, step_rows, BUCKETS):
        families.step_duration.add_metric([kind], buckets, total)
    queued_or_running = dict(
        session.execute(
            select(Step.state, func.count())
            .where(Step.state.in_([StepState.QUEUED.value, StepState.RUNNING.value]))
            .group_by(Step.state)
        ).all()
    )
    for step_state in (StepState.QUEUED.value, StepState.RUNNING.value):
        families.steps.add_metric([step_state], float(queued_or_running.get(step_state, 0)))


def _holds_and_notifications(session: Session, families: _Families, now: datetime) -> None:
    in_force = session.scalar(
        select(func.count())
        .select_from(Hold)
        .where(Hold.lifted_at.is_(None), or_(Hold.until.is_(None), Hold.until > now))
    )
    families.holds.add_metric([], float(in_force or 0))
    outbox = dict(session.execute(select(Outbox.state, func.count()).group_by(Outbox.state)).all())
    families.pending.add_metric([], float(outbox.get(PENDING, 0)))
    families.delivered.add_metric([], float(outbox.get(DELIVERED, 0)))
    families.failed.add_metric([], float(outbox.get(FAILED, 0)))


def _faults(session: Session, families: _Families) -> None:
    counted = {"step.timed_out": families.step_timeouts, "notifier.disabled": families.notifiers_disabled}
    counts = dict(
        session.execute(select(Event.kind, func.count()).where(Event.kind.in_(counted)).group_by(Event.kind)).all()
    )
    for kind, family in counted.items():
        family.add_metric([], float(counts.get(kind, 0)))


def _polls(session: Session, families: _Families, apps: list[str]) -> None:
    if not apps:
        return
    rows = {row.app: row for row in session.scalars(select(SourcePoll).where(SourcePoll.app.in_(apps)))}
    for app in apps:
        row = rows.get(app)
        families.poll_failures.add_metric([app], float(row.failures if row is not None else 0))
        families.poll_failing.add_metric([app], float(row is not None and row.failing_since is not None))
        if row is not None and row.answered_at is not None:
            families.poll_answered.add_metric([app], row.answered_at.timestamp())


def _places(statuses: list[views.AppStatus], families: _Families, now: datetime) -> None:
    for app in statuses:
        holds = [h for h in app.holds if h["until"] is None or datetime.fromisoformat(h["until"]) > now]
        for env, where in app.environments.items():
            families.place_state.add_metric([app.name, env, where.state or "none"], 1.0)
            families.place_health.add_metric([app.name, env, where.health or "unknown"], 1.0)
            if where.current is not None:
                families.current_release.add_metric([app.name, env, where.current, where.health or "unknown"], 1.0)
            here = [h for h in holds if h["environment"] in (env, None)]
            for kind in HoldKind:
                families.place_holds.add_metric(
                    [app.name, env, kind.value], float(sum(h["kind"] == kind for h in here))
                )


def _histogram(
    session: Session, rows: Select[Any], bounds: Sequence[float]
) -> Iterator[tuple[tuple[str, ...], list[tuple[str, float]], float]]:
    """Per labels (the leading columns of ``rows``, then bucket, count and seconds): cumulative bucket
    counts and the sum of durations, from the counted rows (:mod:`conveyor.store.durations`)."""
    per_labels: dict[tuple[str, ...], dict[int, tuple[int, float]]] = {}
    for row in session.execute(rows):
        *labels, bucket, count, seconds = row
        per_labels.setdefault(tuple(str(label) for label in labels), {})[bucket] = (count, seconds)
    for key in sorted(per_labels):
        counted = per_labels[key]
        buckets, running = [], 0
        for index, bound in enumerate([*bounds, None]):
            running += counted.get(index, (0, 0.0))[0]
            buckets.append(("+Inf" if bound is None else _bound(bound), float(running)))
        yield key, buckets, max(float(sum(seconds for _, seconds in counted.values())), 0.0)


def _bound(value: float) -> str:
    return repr(float(value))


def registry_for(db: Database, config: Config) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(db, config))
    return registry
