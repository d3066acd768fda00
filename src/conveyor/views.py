"""Read models for people and tools: status (apps × environments), history, and why.

``why`` answers "why didn't my change go out?": per environment, the latest Decision in plain words,
the holds in force and the deployment it concerns, all with evidence. These functions only read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, column, select, values
from sqlalchemy.orm import Session

from conveyor.config.resolved import Config
from conveyor.domain.model import DeploymentState
from conveyor.store.database import Database
from conveyor.store.records import latest_decision
from conveyor.store.step_logs import read_step_log
from conveyor.store.tables import Deployment, Hold, LatestSuccess, Release, Step


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


@dataclass
class EnvStatus:
    release: str | None = None
    sha: str | None = None
    state: str | None = None
    since: str | None = None
    live: str | None = None  # newest release that succeeded here
    summary: str = ""
    deployment_id: int | None = None


@dataclass
class AppStatus:
    name: str
    team: str
    tier: str
    groups: list[str]
    environments: dict[str, EnvStatus]
    holds: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def hold_json(h: Hold, label: str | None) -> dict[str, Any]:
    return {
        "id": h.id,
        "kind": h.kind,
        "app": h.app,
        "environment": h.environment,
        "release": label,
        "reason": h.reason,
        "actor": h.actor,
        "since": _iso(h.since),
        "until": _iso(h.until),
        "evidence": h.evidence,
    }


def open_holds(session: Session, app: str | None = None) -> list[dict[str, Any]]:
    """Holds not lifted yet, oldest first: those on ``app`` and on every app, or all of them."""
    stmt = select(Hold, Release.label).outerjoin(Release, Release.id == Hold.release_id).where(Hold.lifted_at.is_(None))
    if app is not None:
        stmt = stmt.where((Hold.app == app) | Hold.app.is_(None))
    return [hold_json(h, label) for h, label in session.execute(stmt.order_by(Hold.id)).all()]


def _live_labels(session: Session) -> dict[tuple[str, str], str]:
    """The newest release that succeeded in each (app, environment)."""
    rows = session.execute(
        select(LatestSuccess.app, LatestSuccess.environment, Release.label).join(
            Release, Release.id == LatestSuccess.release_id
        )
    )
    return {(r.app, r.environment): r.label for r in rows}


def _newest_deployments(session: Session, places: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The newest deployment in each (app, environment) that was not superseded, in one statement: the
    places are a VALUES list and each one's newest is an index seek, so the cost follows the number of
    places, never the history."""
    if not places:
        return {}
    wanted = values(column("app", String), column("environment", String), name="places").data(places).cte("places")
    newest = (
        select(Deployment.id)
        .where(
            Deployment.app == wanted.c.app,
            Deployment.environment == wanted.c.environment,
            Deployment.state != DeploymentState.SUPERSEDED.value,
        )
        .order_by(Deployment.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Deployment.id,
            Deployment.app,
            Deployment.environment,
            Deployment.state,
            Deployment.summary,
            Deployment.queued_at,
            Deployment.started_at,
            Deployment.finished_at,
            Release.label,
            Release.sha,
        )
        .join(Release, Release.id == Deployment.release_id)
        .where(Deployment.id.in_(select(newest).select_from(wanted)))
    )
    return {(r.app, r.environment): r for r in rows}


def _status_of(
    config: Config,
    app: str,
    live: dict[tuple[str, str], str],
    newest: dict[tuple[str, str], Any],
    holds: list[dict[str, Any]],
) -> AppStatus:
    cfg = config.app(app)
    envs: dict[str, EnvStatus] = {}
    for env in config.environments:
        label = live.get((cfg.name, env))
        d = newest.get((cfg.name, env))
        envs[env] = (
            EnvStatus(live=label)
            if d is None
            else EnvStatus(
                d.label,
                d.sha,
                d.state,
                _iso(d.finished_at or d.started_at or d.queued_at),
                label,
                d.summary,
                d.id,
            )
        )
    mine = [h for h in holds if h["app"] in (cfg.name, None)]
    return AppStatus(cfg.name, cfg.team, cfg.tier, list(cfg.groups), envs, mine)


def _statuses(session: Session, config: Config, names: list[str]) -> list[AppStatus]:
    """Apps' places in every environment: three statements however many apps and however long the history."""
    places = [(name, env) for name in names for env in config.environments]
    live, holds, newest = _live_labels(session), open_holds(session), _newest_deployments(session, places)
    return [_status_of(config, name, live, newest, holds) for name in names]


def status(db: Database, config: Config, app: str | None = None) -> list[AppStatus]:
    names = [config.app(app).name] if app else list(config.apps)
    with db.read() as session:
        return _statuses(session, config, names)


def history(db: Database, config: Config, app: str, limit: int = 50) -> list[dict[str, Any]]:
    config.app(app)
    with db.read() as session:
        rows = session.execute(
            select(Deployment, Release)
            .join(Release, Release.id == Deployment.release_id)
            .where(Deployment.app == app)
            .order_by(Deployment.id.desc())
            .limit(limit)
        ).all()
        return [
            {
                "deployment_id": d.id,
                "release": r.label,
                "sha": r.sha,
                "environment": d.environment,
                "state": d.state,
                "queued_at": _iso(d.queued_at),
                "started_at": _iso(d.started_at),
                "finished_at": _iso(d.finished_at),
                "created_by": d.created_by,
                "summary": d.summary,
                "commits": [c.get("subject", "") for c in r.commits][-5:],
            }
            for d, r in rows
        ]


def why(db: Database, config: Config, app: str, environment: str | None = None) -> dict[str, Any]:
    cfg = config.app(app)
    envs = [config.check_environment(environment)] if environment else list(config.environments)
    with db.read() as session:
        (st,) = _statuses(session, config, [cfg.name])
        order = list(config.environments)
        out: dict[str, Any] = {"app": app, "tier": cfg.tier, "environments": {}, "holds": st.holds}
        for env in envs:
            decision = latest_decision(session, app, env)
            current = st.environments[env]
            failed_step = None
            if current.state == DeploymentState.FAILED.value and current.deployment_id is not None:
                failed_step = _failed_step(session, current.deployment_id)
            decision_json = (
                None
                if decision is None
                else {
                    "verdict": decision.verdict,
                    "rule": decision.rule,
                    "summary": decision.summary,
                    "at": _iso(decision.at),
                    "reasons": decision.reasons,
                    "evidence": decision.evidence,
                }
            )
            out["environments"][env] = {
                "state": current.state,
                "release": current.release,
                "live": current.live,
                "summary": current.summary,
                "decision": decision_json,
                "failed_step": failed_step,
                "explanation": explain(app, env, order, current, decision_json, st.holds),
            }
        return out


def _failed_step(session: Session, deployment_id: int) -> dict[str, Any] | None:
    step = session.scalars(
        select(Step).where(Step.deployment_id == deployment_id, Step.state == "failed").order_by(Step.id).limit(1)
    ).first()
    if step is None:
        return None
    return {
        "kind": step.kind,
        "name": step.name,
        "outcome": step.outcome,
        "measurements": step.measurements,
        "log_tail": read_step_log(session, step.id).splitlines()[-10:],
    }


def _hhmm(iso: str) -> str:
    return iso[:16].replace("T", " ") + " UTC"


def explain(
    app: str,
    env: str,
    environments: list[str],
    current: EnvStatus,
    decision: dict[str, Any] | None,
    holds: list[dict[str, Any]],
) -> str:
    """One plain sentence for an environment, preferring what stops the line now."""
    idx = environments.index(env)
    here = [h for h in holds if h["environment"] in (env, None)]
    upstream = [
        h
        for h in holds
        if h["kind"] == "block" and h["environment"] in environments and environments.index(h["environment"]) < idx
    ]
    summary: str | None = decision["summary"] if decision else None
    if current.state in (DeploymentState.PENDING.value, DeploymentState.WAITING.value) and summary:
        return summary
    if here:
        h = here[0]
        if h["kind"] != "block":
            return f"held since {_hhmm(h['since'])} by {h['actor']}: {h['reason']}"
        return (
            f"blocked since {_hhmm(h['since'])}: {h['reason']}. Lifts when a release newer than "
            f"{h['release']} passes {env}, or run: conveyor unblock {app} --env {env} --reason ..."
        )
    live = f"{current.live} is live here; " if current.live else ""
    if upstream:
        h = upstream[0]
        return (
            f"{live}held: {app} is blocked in {h['environment']} since {_hhmm(h['since'])} "
            f"({h['reason']}), so nothing newer comes to {env} until that block lifts"
        )
    if decision and decision["rule"] == "ManualTierWaitsForPromotion":
        return f"{live}{summary}"
    if current.state is None:
        return "nothing has been deployed here yet"
    if current.state == DeploymentState.SUCCEEDED.value:
        return f"{current.release} is live since {_hhmm(current.since or '')}"
    if current.state == DeploymentState.FAILED.value:
        return f"{live}the last attempt failed: {current.summary} (its block was lifted)"
    return f"{current.release} is {current.state}: {current.summary or summary or ''}".rstrip(": ")
