"""Read models for people and tools: status (apps × environments), history, why and logs.

``why`` answers "why didn't my change go out?": per environment, the latest Decision in plain words,
the holds in force and the deployment it concerns, all with evidence. ``logs`` shows one deployment's
steps, each step's attempts and its log. These functions only read; a step's log text is read in one
place, :func:`step_log_text`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, column, func, select, values
from sqlalchemy.orm import Session

from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.domain.holds import Attempt, HoldView, Obstacle, lift_command, stopping
from conveyor.domain.model import DeploymentState, Health, HoldKind, Override
from conveyor.errors import OperationError
from conveyor.github.candidates import newest_candidate, release_authors, waiting_candidates
from conveyor.github.deliveries import push_news
from conveyor.sources.poll_status import polling_status
from conveyor.store.database import Database
from conveyor.store.events import latest_decision
from conveyor.store.snapshot import hold_policy, load_holds, placement_rows
from conveyor.store.step_logs import read_step_log
from conveyor.store.tables import Decision, Deployment, Hold, Release, Step, StepAttempt

MANUAL_WAIT_RULE = "ManualTierWaitsForPromotion"  # the planner rule that leaves a release to a person
CI_RULES = ("CiFailed", "CiTimedOut")  # the GitHub intake's decisions: a pushed commit was not released

NOT_STARTED = (DeploymentState.PENDING.value, DeploymentState.WAITING.value)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


@dataclass
class EnvStatus:
    """One (app, environment). ``release``, ``sha``, ``state``, ``since``, ``summary`` and ``deployment_id``
    describe the newest deployment there (which may still be on its way); ``current``, ``health`` and
    ``last_good`` say what runs there, from the placement the orchestrator keeps (``live`` is ``current``,
    or None when it was stopped)."""

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
    # healthy | failing | checking | unknown | stopped (nothing runs: ``current`` ran last); None before
    # anything ran here
    health: str | None = None
    last_good: str | None = None  # the release that most recently passed every check here
    # what stops the next automatic start here now (the scoping function's answer), most binding first
    obstacles: list[dict[str, Any]] = field(default_factory=list)
    awaiting_promotion: str | None = None  # a manual-tier release that passed the previous environment


@dataclass
class AppStatus:
    name: str
    team: str
    tier: str
    groups: list[str]
    environments: dict[str, EnvStatus]
    holds: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)  # pushed on GitHub, waiting for CI

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
        "lift": lift_command(_hold_view(h, label)),
    }


def _hold_view(h: Hold, label: str | None) -> HoldView:
    return HoldView(
        h.id, HoldKind(h.kind), h.app, h.environment, h.release_id, h.reason, h.actor, h.since, h.until, label or ""
    )


def active_holds(session: Session, now: datetime, app: str | None = None) -> list[dict[str, Any]]:
    """Holds in force at ``now`` (not lifted, not expired), oldest first: those on ``app`` and on every
    app, or all of them."""
    stmt = select(Hold, Release.label).outerjoin(Release, Release.id == Hold.release_id).where(Hold.lifted_at.is_(None))
    if app is not None:
        stmt = stmt.where((Hold.app == app) | Hold.app.is_(None))
    rows = session.execute(stmt.order_by(Hold.id)).all()
    return [hold_json(h, label) for h, label in rows if h.until is None or now < h.until]


def obstacle_json(o: Obstacle) -> dict[str, Any]:
    return {
        "kind": o.kind,
        "rule": o.rule,
        "summary": o.summary,
        "lift": o.lift,
        "hold_id": o.hold.id if o.hold else None,
        "forceable": o.forceable,
    }


def stops(db: Database, now: datetime | None = None) -> list[dict[str, Any]]:
    """The stop-the-line holds in force: the banner of ``status``."""
    with db.read() as session:
        return [h for h in active_holds(session, now or utc_now()) if h["kind"] == HoldKind.STOP.value]


def placements(session: Session, app: str | None = None) -> dict[tuple[str, str], Any]:
    """What runs in each (app, environment): current release (label, SHA, id), health and last good."""
    return placement_rows(session, app)


def _places_of(places: list[tuple[str, str]]) -> Any:
    """The (app, environment) pairs as a VALUES list, to join each with its newest row by index."""
    return values(column("app", String), column("environment", String), name="places").data(places).cte("places")


def _awaiting_promotion(session: Session, places: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, str]]:
    """Per place, the release the newest Decision there says waits for ``conveyor promote`` (its id and
    label): the planner's ``ManualTierWaitsForPromotion``. One statement, an index seek per place."""
    if not places:
        return {}
    wanted = _places_of(places)
    newest = (
        select(Decision.id)
        .where(Decision.app == wanted.c.app, Decision.environment == wanted.c.environment)
        .order_by(Decision.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Decision.app, Decision.environment, Release.id, Release.label)
        .join(Release, Release.id == Decision.release_id)
        .where(Decision.id.in_(select(newest).select_from(wanted)), Decision.rule == MANUAL_WAIT_RULE)
    )
    return {(r.app, r.environment): (r.id, r.label) for r in rows}


def _still_promotable(
    awaiting: dict[tuple[str, str], tuple[int, str]], placed: dict[tuple[str, str], Any], environments: tuple[str, ...]
) -> dict[tuple[str, str], tuple[int, str]]:
    """The waits for ``promote`` whose release still runs, healthy, in the environment before: one rolled
    back, replaced or left unknown there since (a cancel) is no longer what ``promote`` would send."""
    kept = {}
    for (app, env), (release_id, label) in awaiting.items():
        before = placed.get((app, environments[environments.index(env) - 1])) if env in environments[1:] else None
        if before is not None and before.release_id == release_id and before.health == Health.HEALTHY.value:
            kept[(app, env)] = (release_id, label)
    return kept


def _newest_deployments(session: Session, places: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The newest deployment in each (app, environment) that was not superseded, in one statement: the
    places are a VALUES list and each one's newest is an index seek, so the cost follows the number of
    places, never the history."""
    if not places:
        return {}
    wanted = _places_of(places)
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
            Deployment.release_id,
            Deployment.origin_key,
            Deployment.override,
            Deployment.baking_since,
            Deployment.bake_until,
            Release.label,
            Release.sha,
        )
        .join(Release, Release.id == Deployment.release_id)
        .where(Deployment.id.in_(select(newest).select_from(wanted)))
    )
    return {(r.app, r.environment): r for r in rows}


def _attempt(app: str, env: str, d: Any) -> Attempt:
    """The start ``why`` asks about: the deployment waiting here, or else the next automatic one."""
    if d is not None and d.state in NOT_STARTED:
        override = Override(d.override) if d.override else None
        return Attempt(app, env, d.release_id, explicit=d.origin_key is None, override=override)
    return Attempt(app, env)


def _status_of(
    config: Config,
    app: str,
    placed: dict[tuple[str, str], Any],
    newest: dict[tuple[str, str], Any],
    holds: tuple[HoldView, ...],
    listed: list[dict[str, Any]],
    awaiting: dict[tuple[str, str], tuple[int, str]],
    now: datetime,
    candidates: list[dict[str, Any]] | None = None,
) -> AppStatus:
    cfg = config.app(app)
    policy = hold_policy(config)
    envs: dict[str, EnvStatus] = {}
    for env in config.environments:
        p = placed.get((cfg.name, env))
        d = newest.get((cfg.name, env))
        st = EnvStatus()
        if p is not None:
            st.current, st.current_sha, st.current_deployment_id = p.label, p.sha, p.deployment_id
            st.current_since, st.health, st.last_good = _iso(p.since), p.health, p.good_label
            st.live = None if p.health == Health.STOPPED.value else p.label
        if d is not None:
            st.release, st.sha, st.state, st.summary, st.deployment_id = d.label, d.sha, d.state, d.summary, d.id
            st.since = _iso(d.finished_at or d.started_at or d.queued_at)
        envs[env] = st
        found = stopping(_attempt(cfg.name, env, d), holds, policy, now)
        st.obstacles = [obstacle_json(o) for o in found]
        waiting = awaiting.get((cfg.name, env))
        if waiting is not None and (d is None or d.release_id < waiting[0]):  # not promoted yet
            st.awaiting_promotion = waiting[1]
    mine = [h for h in listed if h["app"] in (cfg.name, None)]
    return AppStatus(cfg.name, cfg.team, cfg.tier, list(cfg.groups), envs, mine, candidates or [])


def _statuses(session: Session, config: Config, names: list[str], now: datetime) -> list[AppStatus]:
    """Apps' places in every environment: a handful of statements however many apps and however long the
    history (one more only for manual-tier apps' last environment, the one place a release waits for a
    person)."""
    places = [(name, env) for name in names for env in config.environments]
    manual = [(name, config.environments[-1]) for name in names if config.app(name).tier == "manual"]
    placed, holds, newest = placements(session), load_holds(session), _newest_deployments(session, places)
    listed = active_holds(session, now)
    awaiting = _still_promotable(_awaiting_promotion(session, manual), placed, config.environments)
    waiting = waiting_candidates(session, [n for n in names if config.app(n).github])
    return [_status_of(config, name, placed, newest, holds, listed, awaiting, now, waiting.get(name)) for name in names]


def status(db: Database, config: Config, app: str | None = None, now: datetime | None = None) -> list[AppStatus]:
    names = [config.app(app).name] if app else list(config.apps)
    with db.read() as session:
        return _statuses(session, config, names, now or utc_now())


def deployment_target(db: Database, deployment_id: int) -> tuple[str, str]:
    """The label of the release deployment ``deployment_id`` deploys (what a typed SHA prefix resolved to,
    or what a promotion picked) and its environment."""
    with db.read() as session:
        stmt = select(Release.label, Deployment.environment).join(Deployment, Deployment.release_id == Release.id)
        label, environment = session.execute(stmt.where(Deployment.id == deployment_id)).one()
        return label, environment


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
                "authors": release_authors(r.commits),
                "pull_requests": r.pull_requests,
                "compare_url": r.compare_url,
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
        (st,) = _statuses(session, config, [cfg.name], now)
        placed = placements(session, app)
        out: dict[str, Any] = {"app": app, "tier": cfg.tier, "environments": {}, "holds": st.holds}
        out["polling"] = polling_status(session, cfg)
        out["candidate"] = newest_candidate(session, app) if cfg.github else None
        out["push"] = None
        if cfg.github:
            released = session.scalar(select(func.max(Release.created_at)).where(Release.app == app))
            out["push"] = push_news(session, cfg.github, cfg.branch, released)
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
                "obstacles": current.obstacles,
                "explanation": explain(current, decision_json, vetoes, baking),
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
        "log_tail": step_log_text(session, step).splitlines()[-10:],
    }


def step_log_text(session: Session, step: Step) -> str:
    """The whole log of ``step`` so far, as one text (its head and tail past the cap): every reader of
    step logs goes through here."""
    return read_step_log(session, step.id)


def logs(
    db: Database, config: Config, app: str, environment: str | None = None, deployment_id: int | None = None
) -> dict[str, Any]:
    """One deployment of ``app`` with its steps, their attempts and logs.

    ``deployment_id`` picks it (it must be one of ``app``'s); otherwise the app's newest deployment, in
    ``environment`` when given. :class:`OperationError` (``not_found``) when there is none.
    """
    config.app(app)
    if environment is not None:
        config.check_environment(environment)
    with db.read() as session:
        stmt = select(Deployment, Release).join(Release, Release.id == Deployment.release_id)
        stmt = stmt.where(Deployment.app == app)
        if deployment_id is not None:
            stmt = stmt.where(Deployment.id == deployment_id)
        if environment is not None:
            stmt = stmt.where(Deployment.environment == environment)
        row = session.execute(stmt.order_by(Deployment.id.desc()).limit(1)).first()
        if row is None:
            where = f" in {environment}" if environment else ""
            which = f"deployment #{deployment_id} of {app}{where}" if deployment_id else f"deployment of {app}{where}"
            raise OperationError(f"no {which}", "not_found")
        d, r = row
        steps = list(session.scalars(select(Step).where(Step.deployment_id == d.id).order_by(Step.id)))
        attempts: dict[int, list[StepAttempt]] = {}
        for a in session.scalars(
            select(StepAttempt)
            .where(StepAttempt.step_id.in_([s.id for s in steps]))
            .order_by(StepAttempt.step_id, StepAttempt.attempt)
        ):
            attempts.setdefault(a.step_id, []).append(a)
        return {
            "app": app,
            "deployment": {
                "id": d.id,
                "environment": d.environment,
                "state": d.state,
                "release": r.label,
                "sha": r.sha,
                "queued_at": _iso(d.queued_at),
                "started_at": _iso(d.started_at),
                "finished_at": _iso(d.finished_at),
                "created_by": d.created_by,
                "summary": d.summary,
            },
            "steps": [
                {
                    "id": s.id,
                    "kind": s.kind,
                    "name": s.name,
                    "state": s.state,
                    "started_at": _iso(s.started_at),
                    "finished_at": _iso(s.finished_at),
                    "outcome": s.outcome,
                    "attempts": [
                        {
                            "attempt": a.attempt,
                            "owner": a.owner,
                            "started_at": _iso(a.started_at),
                            "finished_at": _iso(a.finished_at),
                            "outcome": a.outcome,
                        }
                        for a in attempts.get(s.id, [])
                    ],
                    "log": step_log_text(session, s),
                }
                for s in steps
            ],
        }


def _hhmm(iso: str) -> str:
    return iso[:16].replace("T", " ") + " UTC"


def veto_text(h: dict[str, Any]) -> str:
    at = (h["since"] or "")[11:16]
    return f"{h['release']} vetoed: rolled back by {h['actor']} at {at} ({h['reason']})"


def explain(
    current: EnvStatus,
    decision: dict[str, Any] | None,
    vetoes: list[dict[str, Any]] | None = None,
    baking: str | None = None,
) -> str:
    """One plain sentence for an environment, preferring what stops the line now (the scoping
    function's first obstacle, with the command that lifts it), then saying what runs and how it is."""
    if decision and decision["rule"] == MANUAL_WAIT_RULE and not current.awaiting_promotion:
        decision = None  # its release no longer runs healthy before, or was promoted since: nothing to say
    summary: str | None = decision["summary"] if decision else None
    runs = f"{current.current} runs here ({current.health}); " if current.current else ""
    if current.health == Health.STOPPED.value:
        runs = f"nothing runs here ({current.current} was stopped by a deploy that then failed); "
    vetoed = "" if any(o["kind"] == "veto" for o in current.obstacles) else "; ".join(map(veto_text, vetoes or []))
    vetoed = f"; {vetoed}" if vetoed else ""
    active = current.state in (DeploymentState.DEPLOYING.value, DeploymentState.VERIFYING.value, "baking")
    if baking:
        return f"{current.release} is {baking}{vetoed}"
    if decision and decision["rule"] == MANUAL_WAIT_RULE and current.awaiting_promotion and not active:
        # a person must act first; what would hold the release after that comes second
        then = f"; once promoted: {current.obstacles[0]['summary']}" if current.obstacles else ""
        return f"{runs}{summary}{then}{vetoed}"
    if current.obstacles and not active:
        first = current.obstacles[0]
        more = [o["kind"] for o in current.obstacles[1:]]
        also = f" (also: {', '.join(more)})" if more else ""
        prefix = "" if current.state in NOT_STARTED else runs
        return f"{prefix}{first['summary']}{also}{vetoed}"
    if current.state in NOT_STARTED and summary:
        return summary + vetoed
    if current.state is None:
        # a commit CI kept from becoming a release says more than an empty place
        ci_kept = summary is not None and decision is not None and decision["rule"] in CI_RULES
        return summary if ci_kept and summary is not None else "nothing has been deployed here yet"
    if current.state == DeploymentState.SUCCEEDED.value and current.current == current.release:
        return f"{current.release} is live since {_hhmm(current.since or '')} ({current.health}){vetoed}"
    if current.state == DeploymentState.FAILED.value:
        return f"{runs}the last attempt failed: {current.summary} (its block was lifted){vetoed}"
    detail = current.summary or summary or ""
    return f"{runs}{current.release} is {current.state}: {detail}".rstrip(": ") + vetoed
