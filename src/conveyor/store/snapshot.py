"""Reading a :class:`~conveyor.domain.snapshot.Snapshot` for the planner: config policy plus the open
part of the database state, in one read transaction."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
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
from conveyor.store.tables import Deployment, Hold, Lock, Release, Step
from conveyor.store.tables import Placement as PlacementRow

OPEN_STATES = [s.value for s in DeploymentState if not s.terminal]
HEALTH = {h.value: h for h in Health}
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
    rows = session.execute(
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
    ).all()
    active_ids = [r.id for r in rows if DeploymentState(r.state).active]
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
            )
            .where(Step.deployment_id.in_(active_ids))
            .order_by(Step.id)
        )
        for s in found:
            steps[s.deployment_id].append(
                StepView(
                    s.id,
                    StepKind(s.kind),
                    s.name,
                    StepState(s.state),
                    s.outcome,
                    {"measurements": s.measurements, **s.result},
                )
            )
    open_deployments = tuple(
        DeploymentView(
            r.id,
            r.app,
            r.environment,
            r.release_id,
            r.label,
            DeploymentState(r.state),
            r.queued_at,
            tuple(steps.get(r.id, ())),
            explicit=r.origin_key is None,
            override=Override(r.override) if r.override else None,
            cancel_requested=r.cancel_requested_at is not None,
            baking_since=r.baking_since,
            bake_until=r.bake_until,
        )
        for r in rows
    )
    placements = load_placements(session)
    return Snapshot(
        environments=config.environments,
        apps=policies,
        open_deployments=open_deployments,
        placements=placements,
        deployed_releases=_deployed_releases(session),
        holds=load_holds(session),
        locks={r.name: r.deployment_id for r in session.execute(select(Lock.name, Lock.deployment_id))},
        decision_fingerprints=frozenset(latest_fingerprints(session, [r.id for r in rows]).values()),
        windows=config.windows,
    )


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


def load_placements(session: Session, app: str | None = None) -> dict[tuple[str, str], Placement]:
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
    placements: dict[tuple[str, str], Placement] = {}
    rows = session.execute(stmt)
    for name, env, deployment, release, health, label, good_deployment, good_release, good_label in rows:
        here = ReleaseAt(deployment, release, label)
        good = None
        if good_release is not None and good_deployment is not None:
            good = here if good_deployment == deployment else ReleaseAt(good_deployment, good_release, good_label)
        placements[(name, env)] = Placement(here, HEALTH[health], good)
    return placements


def _deployed_releases(session: Session) -> frozenset[tuple[int, str]]:
    """(release, environment) pairs with any deployment, limited to the releases current somewhere (a
    subquery, not a list of their ids: a thousand apps' ids made a statement to compile on every pass)."""
    current = select(PlacementRow.release_id)
    rows = session.execute(
        select(Deployment.release_id, Deployment.environment).where(Deployment.release_id.in_(current)).distinct()
    )
    return frozenset((release, environment) for release, environment in rows)


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
