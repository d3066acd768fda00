"""Reading a :class:`~conveyor.domain.snapshot.Snapshot` for the planner: config policy plus the open
part of the database state, in one read transaction."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conveyor.config.resolved import Config
from conveyor.domain.model import DeploymentState, HoldKind, StepKind, StepState
from conveyor.domain.snapshot import (
    AppPolicy,
    DeploymentView,
    HoldView,
    Snapshot,
    StepView,
    Succeeded,
)
from conveyor.store.database import Database
from conveyor.store.tables import Decision, Deployment, Hold, Lock, Release, Step

OPEN_STATES = [s.value for s in DeploymentState if not s.terminal]


def app_policies(config: Config) -> dict[str, AppPolicy]:
    return {
        app.name: AppPolicy(
            name=app.name,
            tier=app.tier,
            reason=app.reason,
            locks={env: app.lock_names(env) for env in config.environments},
            checks={env: tuple(c.name for c in app.environments[env].checks) for env in config.environments},
        )
        for app in config.apps.values()
    }


def load_snapshot(db: Database, config: Config, policies: dict[str, AppPolicy] | None = None) -> Snapshot:
    with db.read() as session:
        return build_snapshot(session, config, policies or app_policies(config))


def build_snapshot(session: Session, config: Config, policies: dict[str, AppPolicy]) -> Snapshot:
    rows = session.execute(
        select(Deployment, Release.label)
        .join(Release, Release.id == Deployment.release_id)
        .where(Deployment.state.in_(OPEN_STATES))
    ).all()
    active_ids = [d.id for d, _ in rows if DeploymentState(d.state).active]
    steps: dict[int, list[StepView]] = defaultdict(list)
    if active_ids:
        for s in session.scalars(select(Step).where(Step.deployment_id.in_(active_ids)).order_by(Step.id)):
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
            d.id,
            d.app,
            d.environment,
            d.release_id,
            label,
            DeploymentState(d.state),
            d.queued_at,
            tuple(steps.get(d.id, ())),
            explicit=d.origin_key is None,
        )
        for d, label in rows
    )
    return Snapshot(
        environments=config.environments,
        apps=policies,
        open_deployments=open_deployments,
        latest_succeeded=_latest_succeeded(session),
        deployed_releases=_deployed_releases(session),
        holds=_holds(session),
        locks={lock.name: lock.deployment_id for lock in session.scalars(select(Lock))},
        decision_fingerprints=_fingerprints(session),
    )


def _latest_succeeded(session: Session) -> dict[tuple[str, str], Succeeded]:
    newest = (
        select(Deployment.app, Deployment.environment, func.max(Deployment.release_id).label("rid"))
        .where(Deployment.state == DeploymentState.SUCCEEDED.value)
        .group_by(Deployment.app, Deployment.environment)
        .subquery()
    )
    rows = session.execute(
        select(Deployment.app, Deployment.environment, func.max(Deployment.id), Release.id, Release.label)
        .join(
            newest,
            (newest.c.app == Deployment.app)
            & (newest.c.environment == Deployment.environment)
            & (newest.c.rid == Deployment.release_id),
        )
        .join(Release, Release.id == Deployment.release_id)
        .where(Deployment.state == DeploymentState.SUCCEEDED.value)
        .group_by(Deployment.app, Deployment.environment, Release.id, Release.label)
    ).all()
    return {(app, env): Succeeded(did, rid, label) for app, env, did, rid, label in rows}


def _deployed_releases(session: Session) -> frozenset[tuple[int, str]]:
    """(release, environment) pairs with any deployment, limited to each app's newest successes."""
    succeeded = (
        select(func.max(Deployment.release_id))
        .where(Deployment.state == DeploymentState.SUCCEEDED.value)
        .group_by(Deployment.app, Deployment.environment)
    )
    rows = session.execute(
        select(Deployment.release_id, Deployment.environment).where(Deployment.release_id.in_(succeeded)).distinct()
    ).all()
    return frozenset((rid, env) for rid, env in rows)


def _holds(session: Session) -> tuple[HoldView, ...]:
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


def _fingerprints(session: Session) -> frozenset[str]:
    latest = select(func.max(Decision.id)).group_by(Decision.app, Decision.environment, Decision.deployment_id)
    return frozenset(session.scalars(select(Decision.fingerprint).where(Decision.id.in_(latest))))
