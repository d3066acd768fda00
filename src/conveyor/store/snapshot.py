"""Reading a :class:`~conveyor.domain.snapshot.Snapshot` for the planner: config policy plus the open
part of the database state, in one read transaction."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from conveyor.config.resolved import Config
from conveyor.domain.holds import HoldPolicy, HoldView
from conveyor.domain.model import DeploymentState, Health, HoldKind, Override, StepKind, StepState
from conveyor.domain.snapshot import (
    AppPolicy,
    DeploymentView,
    Placement,
    ReleaseAt,
    Snapshot,
    StepView,
)
from conveyor.store.database import Database
from conveyor.store.events import latest_fingerprints
from conveyor.store.tables import Deployment, Event, Hold, Lock, Release, Step, among
from conveyor.store.tables import Placement as PlacementRow

_T = TypeVar("_T")
OPEN_STATES = [s.value for s in DeploymentState if not s.terminal]
HEALTH = {h.value: h for h in Health}
# members by stored value: a dict lookup, where calling the enum (as DeploymentState(text)) costs a few
# microseconds each, and a read of a thousand apps makes thousands of them
DEPLOYMENT_STATE = {s.value: s for s in DeploymentState}
STEP_KIND = {k.value: k for k in StepKind}
STEP_STATE = {s.value: s for s in StepState}
GOOD = aliased(Release, name="good")  # a placement's last good release (made once: cached statements stay cached)


def app_policies(config: Config) -> dict[str, AppPolicy]:
    return {
        app.name: AppPolicy(
            name=app.name,
            tier=app.tier,
            reason=app.reason,
            locks={env: app.lock_names(env) for env in config.environments},
            checks={env: tuple(c.name for c in app.environments[env].checks) for env in config.environments},
            on_failure={env: app.environments[env].on_failure for env in config.environments},
            bake={env: app.environments[env].bake for env in config.environments},
            bake_interval={env: app.environments[env].bake_interval for env in config.environments},
        )
        for app in config.apps.values()
    }


def load_snapshot(db: Database, config: Config, policies: dict[str, AppPolicy] | None = None) -> Snapshot:
    with db.read() as session:
        return build_snapshot(session, config, policies or app_policies(config))


def build_snapshot(session: Session, config: Config, policies: dict[str, AppPolicy]) -> Snapshot:
    """Only what is open or current, never the whole history: every query here is bounded by the number
    of open deployments, places (app x environment), live holds and locks, however long conveyor has run."""
    return _assemble(session, config, policies, _AppStates.read(session, None))


@dataclass
class _AppStates:
    """The part of a snapshot that belongs to apps, grouped by app: their open deployments, places, the
    (release, environment) pairs their current releases were deployed to, and the fingerprints of the
    decisions standing for them. What is not here (holds, locks) is read whole every time: it is small."""

    open: dict[str, list[DeploymentView]] = field(default_factory=lambda: defaultdict(list))
    placements: dict[str, dict[tuple[str, str], Placement]] = field(default_factory=lambda: defaultdict(dict))
    deployed: dict[str, set[tuple[int, str]]] = field(default_factory=lambda: defaultdict(set))
    fingerprints: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def read(cls, session: Session, apps: Collection[str] | None) -> _AppStates:
        """The state of ``apps`` (every app when None)."""
        found = cls()
        for d in _open_deployments(session, apps):
            found.open[d.app].append(d)
        for place, placement in load_placements(session, apps=apps).items():
            found.placements[place[0]][place] = placement
        for app, release, environment in _deployed_releases(session, apps):
            found.deployed[app].add((release, environment))
        # only a decision about a deployment not started yet, or about no deployment, is compared with
        # the standing one (a wait, a veto, a manual promotion): the others' fingerprints are never asked
        waiting = [d.id for ds in found.open.values() for d in ds if not d.state.active]
        for (app, _, _), fingerprint in latest_fingerprints(session, waiting, apps).items():
            found.fingerprints[app].add(fingerprint)
        return found

    def replace(self, apps: Collection[str], fresh: _AppStates) -> None:
        """Forget what was known of ``apps`` and take what ``fresh`` read of them."""
        _take(self.open, fresh.open, apps)
        _take(self.placements, fresh.placements, apps)
        _take(self.deployed, fresh.deployed, apps)
        _take(self.fingerprints, fresh.fingerprints, apps)


def _take(known: dict[str, _T], fresh: dict[str, _T], apps: Collection[str]) -> None:
    for app in apps:
        known.pop(app, None)
    known.update(fresh)


def _assemble(session: Session, config: Config, policies: dict[str, AppPolicy], states: _AppStates) -> Snapshot:
    return Snapshot(
        environments=config.environments,
        apps=policies,
        open_deployments=tuple(sorted((d for ds in states.open.values() for d in ds), key=lambda d: d.id)),
        placements={place: p for places in states.placements.values() for place, p in places.items()},
        deployed_releases=frozenset(pair for pairs in states.deployed.values() for pair in pairs),
        holds=load_holds(session),
        locks={r.name: r.deployment_id for r in session.execute(select(Lock.name, Lock.deployment_id))},
        decision_fingerprints=frozenset(f for fs in states.fingerprints.values() for f in fs),
        windows=config.windows,
    )


class SnapshotReader:
    """The snapshots of one planner, each read again only where something changed since the one before.

    Every change of state writes an Event naming its app (:mod:`conveyor.store.events`), and every
    committed Event has a position in the audit chain (``chain_seq``), handed out to one writing
    transaction at a time (:mod:`conveyor.store.chain`): positions grow in commit order, on
    SQLite and on PostgreSQL alike, so nothing committed after a snapshot can take a position that
    snapshot already passed (Event ids cannot promise that on PostgreSQL, where they come from a sequence
    and commit out of order). A snapshot therefore reads again the apps named by the Events chained since
    the last one, and those the caller says it acted on (:meth:`touch`: a decision recorded without a
    change of state writes no Event); the other apps' part is the last snapshot's. Holds and locks are
    read whole every time.

    Read whole: the first time, after an Event about no app (a hold on every app), when more than three
    quarters of the apps changed (one read of all costs less), after :meth:`forget`, when the chain is
    shorter than before (events deleted, the database replaced), and at least every ``FULL_READ_SECONDS``
    whatever happened, so a change written without its Event is picked up in bounded time.
    """

    FULL_READ_SECONDS = 10.0

    def __init__(
        self,
        db: Database,
        config: Config,
        policies: dict[str, AppPolicy] | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db, self.config = db, config
        self.policies = policies or app_policies(config)
        self._monotonic = monotonic
        self._states: _AppStates | None = None
        self._marker = 0  # the chain position of the newest Event the cached states include
        self._read_whole_at = 0.0
        self._touched: set[str] = set()
        self.reads = {"whole": 0, "apps": 0}  # how each snapshot was read, for tests and benchmarks

    def touch(self, apps: Iterable[str | None]) -> None:
        """Read ``apps`` again next time (None among them: read everything again)."""
        for app in apps:
            if app is None:
                self.forget()
                return
            self._touched.add(app)

    def forget(self) -> None:
        """Read the next snapshot whole."""
        self._states = None

    def load(self) -> Snapshot:
        with self.db.read() as session:
            marker = session.scalar(select(func.max(Event.chain_seq))) or 0
            changed = self._changed_apps(session, marker)
            if changed is None:
                self._states = _AppStates.read(session, None)
                self._read_whole_at = self._monotonic()
                self.reads["whole"] += 1
            elif changed:
                assert self._states is not None
                self._states.replace(changed, _AppStates.read(session, changed))
                self.reads["apps"] += 1
            self._marker, self._touched = marker, set()
            assert self._states is not None
            return _assemble(session, self.config, self.policies, self._states)

    def _changed_apps(self, session: Session, marker: int) -> set[str] | None:
        """The apps to read again, or None to read everything."""
        if (
            self._states is None
            or self._monotonic() - self._read_whole_at >= self.FULL_READ_SECONDS
            or marker < self._marker
        ):
            return None
        named = session.scalars(
            select(Event.app).where(Event.chain_seq > self._marker, Event.chain_seq <= marker).distinct()
        )
        apps = set(named) | self._touched
        if None in apps or len(apps) > len(self.policies) * 3 // 4:
            return None
        return cast(set[str], apps)


def _open_deployments(session: Session, apps: Collection[str] | None) -> list[DeploymentView]:
    stmt = (
        select(
            Deployment.id,
            Deployment.app,
            Deployment.environment,
            Deployment.release_id,
            Release.label,
            Deployment.state,
            Deployment.queued_at,
            Deployment.origin_key,
            Deployment.override,
            Deployment.cancel_requested_at,
            Deployment.baking_since,
            Deployment.bake_until,
        )
        .join(Release, Release.id == Deployment.release_id)
        .where(Deployment.state.in_(OPEN_STATES))
    )
    if apps is not None:
        stmt = stmt.where(among(Deployment.app, apps))
    rows = session.execute(stmt).all()
    active_ids = [r.id for r in rows if DEPLOYMENT_STATE[r.state].active]
    steps: dict[int, list[StepView]] = defaultdict(list)
    if active_ids:
        found = session.execute(
            select(
                Step.id,
                Step.deployment_id,
                Step.kind,
                Step.name,
                Step.state,
                Step.outcome,
                Step.measurements,
                Step.result,
                Step.cancel_requested,
            )
            .where(among(Step.deployment_id, active_ids))
            .order_by(Step.id)
        )
        for s in found:
            steps[s.deployment_id].append(
                StepView(
                    s.id,
                    STEP_KIND[s.kind],
                    s.name,
                    STEP_STATE[s.state],
                    s.outcome,
                    {"measurements": s.measurements, **s.result},
                    s.cancel_requested,
                )
            )
    return [
        DeploymentView(
            r.id,
            r.app,
            r.environment,
            r.release_id,
            r.label,
            DEPLOYMENT_STATE[r.state],
            r.queued_at,
            tuple(steps.get(r.id, ())),
            explicit=r.origin_key is None,
            override=Override(r.override) if r.override else None,
            cancel_requested=r.cancel_requested_at is not None,
            baking_since=r.baking_since,
            bake_until=r.bake_until,
        )
        for r in rows
    ]


def placement_rows(session: Session, app: str | None = None) -> dict[tuple[str, str], Any]:
    """What runs in each (app, environment), from the one record the orchestrator keeps: the current
    release (id, label, SHA, deployment, since), its health and the last good release. Every reader of
    placements (the planner's snapshot, status, why, metrics) reads them here."""
    stmt = (
        select(
            PlacementRow.app,
            PlacementRow.environment,
            PlacementRow.deployment_id,
            PlacementRow.release_id,
            PlacementRow.health,
            PlacementRow.since,
            Release.label,
            Release.sha,
            PlacementRow.good_deployment_id,
            PlacementRow.good_release_id,
            GOOD.label.label("good_label"),
        )
        .join(Release, Release.id == PlacementRow.release_id)
        .outerjoin(GOOD, GOOD.id == PlacementRow.good_release_id)
    )
    if app is not None:
        stmt = stmt.where(PlacementRow.app == app)
    return {(r.app, r.environment): r for r in session.execute(stmt)}


def load_placements(
    session: Session, app: str | None = None, *, apps: Collection[str] | None = None
) -> dict[tuple[str, str], Placement]:
    """The placements as the planner reasons about them: the same record as :func:`placement_rows`, only
    the columns the planner reads (a pass reads every place, a thousand apps' worth, several times a second
    while deployments finish: no SHA, no times, plain tuples)."""
    stmt = select(
        PlacementRow.app,
        PlacementRow.environment,
        PlacementRow.deployment_id,
        PlacementRow.release_id,
        PlacementRow.health,
        Release.label,
        PlacementRow.good_deployment_id,
        PlacementRow.good_release_id,
        GOOD.label,
    ).join(Release, Release.id == PlacementRow.release_id)
    stmt = stmt.outerjoin(GOOD, GOOD.id == PlacementRow.good_release_id)
    if app is not None:
        stmt = stmt.where(PlacementRow.app == app)
    if apps is not None:
        stmt = stmt.where(among(PlacementRow.app, apps))
    placements: dict[tuple[str, str], Placement] = {}
    rows = session.execute(stmt)
    for name, env, deployment, release, health, label, good_deployment, good_release, good_label in rows:
        here = ReleaseAt(deployment, release, label)
        good = None
        if good_release is not None and good_deployment is not None:
            good = here if good_deployment == deployment else ReleaseAt(good_deployment, good_release, good_label)
        placements[(name, env)] = Placement(here, HEALTH[health], good)
    return placements


def _deployed_releases(session: Session, apps: Collection[str] | None) -> list[tuple[str, int, str]]:
    """(app, release, environment) for every deployment of a release current somewhere, of ``apps`` (all
    when None). The releases are a subquery, not a list of their ids: a thousand apps' ids made a
    statement to compile on every pass."""
    current = select(PlacementRow.release_id)
    if apps is not None:
        current = current.where(among(PlacementRow.app, apps))
    rows = session.execute(
        select(Deployment.app, Deployment.release_id, Deployment.environment)
        .where(Deployment.release_id.in_(current))
        .distinct()
    )
    return [(app, release, environment) for app, release, environment in rows]


def hold_policy(config: Config) -> HoldPolicy:
    return HoldPolicy(config.environments, config.windows)


def load_holds(session: Session) -> tuple[HoldView, ...]:
    """Every hold not lifted, oldest first (expired ones too: the scoping function ignores those)."""
    rows = session.execute(
        select(Hold, Release.label)
        .outerjoin(Release, Release.id == Hold.release_id)
        .where(Hold.lifted_at.is_(None))
        .order_by(Hold.id)
    ).all()
    return tuple(
        HoldView(
            h.id,
            HoldKind(h.kind),
            h.app,
            h.environment,
            h.release_id,
            h.reason,
            h.actor,
            h.since,
            h.until,
            label or "",
        )
        for h, label in rows
    )
