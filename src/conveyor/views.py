"""Read models for people and tools: status (apps × environments), history, and why.

``why`` answers "why didn't my change go out?": per environment, the latest Decision in plain words,
the holds in force and the deployment it concerns, all with evidence. These functions only read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, column, select, values
from sqlalchemy.orm import Session, aliased

from conveyor.config.resolved import Config
from conveyor.domain.model import DeploymentState
from conveyor.store.database import Database
from conveyor.store.records import latest_decision
from conveyor.store.tables import Deployment, Hold, Placement, Release, Step

GOOD = aliased(Release, name="good")  # a placement's last good release (made once: cached statements stay cached)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


@dataclass
class EnvStatus:
    """One (app, environment). ``release``, ``sha``, ``state``, ``since``, ``summary`` and ``deployment_id``
    describe the newest deployment there (which may still be on its way); ``current``, ``health`` and
    ``last_good`` say what runs there, from the placement the orchestrator keeps (``live`` is ``current``)."""

    release: str | None = None
    sha: str | None = None
    state: str | None = None
    since: str | None = None
    live: str | None = None
    summary: str = ""
    deployment_id: int | None = None
    current: str | None = None  # the release whose deploy step last succeeded here: it runs
    current_sha: str | None = None
    current_deployment_id: int | None = None
    current_since: str | None = None
    health: str | None = None  # healthy | failing | checking | unknown; None before anything ran here
    last_good: str | None = None  # the release that most recently passed every check here


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
        "release_id": h.release_id,
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


def placements(session: Session, app: str | None = None) -> dict[tuple[str, str], Any]:
    """What runs in each (app, environment): current release (label, SHA, id), health and last good."""
    stmt = (
        select(
            Placement.app,
            Placement.environment,
            Placement.deployment_id,
            Placement.release_id,
            Placement.health,
            Placement.since,
            Release.label,
            Release.sha,
            GOOD.label.label("good_label"),
        )
        .join(Release, Release.id == Placement.release_id)
        .outerjoin(GOOD, GOOD.id == Placement.good_release_id)
    )
    if app is not None:
        stmt = stmt.where(Placement.app == app)
    return {(r.app, r.environment): r for r in session.execute(stmt)}


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
            Deployment.baking_since,
            Deployment.bake_until,
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
    placed: dict[tuple[str, str], Any],
    newest: dict[tuple[str, str], Any],
    holds: list[dict[str, Any]],
) -> AppStatus:
    cfg = config.app(app)
    envs: dict[str, EnvStatus] = {}
    for env in config.environments:
        p = placed.get((cfg.name, env))
        d = newest.get((cfg.name, env))
        st = EnvStatus()
        if p is not None:
            st.current, st.current_sha, st.current_deployment_id = p.label, p.sha, p.deployment_id
            st.current_since, st.health, st.last_good, st.live = _iso(p.since), p.health, p.good_label, p.label
        if d is not None:
            st.release, st.sha, st.state, st.summary, st.deployment_id = d.label, d.sha, d.state, d.summary, d.id
            st.since = _iso(d.finished_at or d.started_at or d.queued_at)
        envs[env] = st
    mine = [h for h in holds if h["app"] in (cfg.name, None)]
    return AppStatus(cfg.name, cfg.team, cfg.tier, list(cfg.groups), envs, mine)


def _statuses(session: Session, config: Config, names: list[str]) -> list[AppStatus]:
    """Apps' places in every environment: three statements however many apps and however long the history."""
    places = [(name, env) for name in names for env in config.environments]
    placed, holds, newest = placements(session), open_holds(session), _newest_deployments(session, places)
    return [_status_of(config, name, placed, newest, holds) for name in names]


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
        running = {p.deployment_id for p in placements(session, app).values()}
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
                "current": d.id in running,  # what runs in its environment now
                "override": d.override,
            }
            for d, r in rows
        ]


def why(
    db: Database, config: Config, app: str, environment: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    cfg = config.app(app)
    envs = [config.check_environment(environment)] if environment else list(config.environments)
    now = now or datetime.now(UTC)
    with db.read() as session:
        (st,) = _statuses(session, config, [cfg.name])
        placed = placements(session, app)
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
            p = placed.get((app, env))
            vetoes = [
                h
                for h in st.holds
                if h["kind"] == "veto"
                and h["environment"] == env
                and (p is None or (h["release_id"] or 0) >= p.release_id)  # an older one says nothing now
            ]
            baking = _baking_left(session, current, now)
            out["environments"][env] = {
                "state": current.state,
                "release": current.release,
                "live": current.live,
                "current": current.current,
                "health": current.health,
                "last_good": current.last_good,
                "summary": current.summary,
                "decision": decision_json,
                "failed_step": failed_step,
                "explanation": explain(app, env, order, current, decision_json, st.holds, vetoes, baking),
            }
        return out


def _baking_left(session: Session, current: EnvStatus, now: datetime) -> str | None:
    if current.state != DeploymentState.BAKING.value or current.deployment_id is None:
        return None
    d = session.get(Deployment, current.deployment_id)
    if d is None or d.baking_since is None or d.bake_until is None:
        return None
    total = (d.bake_until - d.baking_since).total_seconds()
    left = max(0.0, (d.bake_until - now).total_seconds())
    return f"baking: {_span(left)} of {_span(total)} left"


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 60)}m" if seconds >= 60 else f"{int(seconds)}s"


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
        "log_tail": step.log.splitlines()[-10:],
    }


def _hhmm(iso: str) -> str:
    return iso[:16].replace("T", " ") + " UTC"


def veto_text(h: dict[str, Any]) -> str:
    at = (h["since"] or "")[11:16]
    return f"{h['release']} vetoed: rolled back by {h['actor']} at {at} ({h['reason']})"


def explain(
    app: str,
    env: str,
    environments: list[str],
    current: EnvStatus,
    decision: dict[str, Any] | None,
    holds: list[dict[str, Any]],
    vetoes: list[dict[str, Any]] | None = None,
    baking: str | None = None,
) -> str:
    """One plain sentence for an environment, preferring what stops the line now, then saying what runs."""
    idx = environments.index(env)
    here = [h for h in holds if h["environment"] in (env, None) and h["kind"] != "veto"]
    upstream = [
        h
        for h in holds
        if h["kind"] == "block" and h["environment"] in environments and environments.index(h["environment"]) < idx
    ]
    vetoed = "; ".join(veto_text(h) for h in vetoes or [])
    vetoed = f"; {vetoed}" if vetoed else ""
    runs = f"{current.current} runs here ({current.health}); " if current.current else ""
    summary: str | None = decision["summary"] if decision else None
    if current.state in (DeploymentState.PENDING.value, DeploymentState.WAITING.value) and summary:
        return summary + vetoed
    if baking:
        return f"{current.release} is {baking}{vetoed}"
    if here:
        h = here[0]
        if h["kind"] != "block":
            return f"{runs}held since {_hhmm(h['since'])} by {h['actor']}: {h['reason']}{vetoed}"
        return (
            f"{runs}blocked since {_hhmm(h['since'])}: {h['reason']}. Lifts when a release newer than "
            f"{h['release']} passes {env}, or run: conveyor unblock {app} --env {env} --reason ...{vetoed}"
        )
    if upstream:
        h = upstream[0]
        return (
            f"{runs}held: {app} is blocked in {h['environment']} since {_hhmm(h['since'])} "
            f"({h['reason']}), so nothing newer comes to {env} until that block lifts{vetoed}"
        )
    if decision and decision["rule"] == "ManualTierWaitsForPromotion":
        return f"{runs}{summary}{vetoed}"
    if current.state is None:
        return "nothing has been deployed here yet"
    if current.state == DeploymentState.SUCCEEDED.value and current.current == current.release:
        return f"{current.release} is live since {_hhmm(current.since or '')} ({current.health}){vetoed}"
    if current.state == DeploymentState.FAILED.value:
        return f"{runs}the last attempt failed: {current.summary} (its block was lifted){vetoed}"
    detail = current.summary or summary or ""
    return f"{runs}{current.release} is {current.state}: {detail}".rstrip(": ") + vetoed
