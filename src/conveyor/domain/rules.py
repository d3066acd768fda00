"""The planner's rules, each one small, named and tested on its own.

Every rule is a pure function of a :class:`Snapshot`, one deployment or (app, environment), and ``now``.
It returns an Intent or Decision, or None when it has nothing to say. :mod:`conveyor.domain.planner`
composes them in a fixed order.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from conveyor.domain.decisions import (
    Bake,
    Cancel,
    CancelSteps,
    Decision,
    Fail,
    Intent,
    Note,
    Promote,
    RepeatChecks,
    Succeed,
    Supersede,
    Verify,
)
from conveyor.domain.holds import Attempt, HoldView, Obstacle, stopping
from conveyor.domain.model import DeploymentState, Health, HoldKind, Override, StepKind, StepState, Verdict
from conveyor.domain.snapshot import DeploymentView, ReleaseAt, Snapshot, StepView


def _hhmm(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def supersede_older_release(d: DeploymentView, snap: Snapshot) -> Supersede | None:
    """A newer release queued, running or done in the same (app, environment) replaces one not started;
    so does the same release already running there, deployed by hand past what held this one.

    An operator's explicit deployment of an older release (a rollback by hand) is only replaced by a
    newer one still to come, not by one already live: deploying an old version on purpose must work; nor
    is an explicit deployment of the release that runs (a redeploy on purpose)."""
    if d.override == Override.ROLLBACK:
        return None  # an operator's way back: never replaced, not even by a newer release to come
    rolled_back = None if d.explicit or d.override else rolled_back_before(d.app, d.release_id, d.environment, snap)
    if rolled_back is not None:
        summary = (
            f"withdrawn: {d.label} was rolled back in {rolled_back.environment} by {rolled_back.actor} "
            f"({rolled_back.reason}); it will not go on to {d.environment}"
        )
        evidence = {"veto": rolled_back.id, "vetoed_in": rolled_back.environment}
        return _superseded(d, "WithdrawRolledBackRelease", summary, d.release_id, evidence)
    placed = snap.placements.get((d.app, d.environment))
    if placed and placed.current.release_id == d.release_id and placed.health != Health.STOPPED and not d.explicit:
        return _superseded(
            d,
            "SupersedeLiveRelease",
            f"superseded: {d.label} already runs in {d.environment} (deployment #{placed.current.deployment_id}); "
            "it will not deploy there again",
            d.release_id,
        )
    newest_open = snap.newest_open_release.get((d.app, d.environment), d.release_id)
    newer = [newest_open] if newest_open > d.release_id else []
    if placed and placed.current.release_id > d.release_id and not d.explicit:
        newer.append(placed.current.release_id)
    if not newer:
        return None
    by = max(newer)
    label = snap.release_labels.get((d.app, by), f"release id {by}")
    summary = f"superseded: a newer release ({label}) is going to {d.environment}; {d.label} will not deploy there"
    return _superseded(d, "SupersedeOlderRelease", summary, by)


def rolled_back_before(app: str, release_id: int, environment: str, snap: Snapshot) -> HoldView | None:
    """The veto of ``release_id`` in an environment before ``environment`` where it no longer runs: it was
    rolled back there, so it goes no further on its own (an operator may still deploy or promote it by
    hand). A release vetoed somewhere it runs again (deployed there by hand since) is not held back."""
    if environment not in snap.environments:
        return None
    earlier = snap.environments[: snap.environments.index(environment)]
    for h in snap.holds:
        if h.kind != HoldKind.VETO or h.app != app or h.release_id != release_id or h.environment not in earlier:
            continue
        there = snap.placements.get((app, h.environment))
        if there is None or there.current.release_id != release_id:
            return h
    return None


def _superseded(
    d: DeploymentView, rule: str, summary: str, by: int, evidence: dict[str, Any] | None = None
) -> Supersede:
    decision = Decision(
        d.app,
        d.environment,
        Verdict.SUPERSEDE,
        rule,
        summary,
        evidence={"superseded_release": d.release_id, "by_release": by, **(evidence or {})},
        deployment_id=d.id,
        release_id=d.release_id,
    )
    return Supersede(decision, deployment_id=d.id, by_release_id=by)


def stopping_holds(d: DeploymentView, snap: Snapshot, now: datetime) -> tuple[Obstacle, ...]:
    """What stops ``d`` from starting now (see :func:`conveyor.domain.holds.stopping`)."""
    attempt = Attempt(d.app, d.environment, d.release_id, d.explicit, d.override)
    return stopping(attempt, snap.holds, snap.hold_policy, now)


def hold_decision(d: DeploymentView, obstacles: tuple[Obstacle, ...]) -> Decision:
    """Held (or waiting for a window) by the first obstacle; the others are in the evidence."""
    first = obstacles[0]
    more = [o.kind for o in obstacles[1:]]
    summary = first.summary + (f" (also: {', '.join(more)})" if more else "")
    reasons = tuple(o.hold.reason for o in obstacles if o.hold is not None)
    return Decision(
        d.app,
        d.environment,
        Verdict.WAIT if first.kind == "window" else Verdict.HOLD,
        first.rule,
        summary,
        reasons=reasons,
        evidence={**first.evidence(), "obstacles": [o.evidence() for o in obstacles]},
        deployment_id=d.id,
        release_id=d.release_id,
    )


def _step(d: DeploymentView, kind: StepKind) -> list[StepView]:
    return [s for s in d.steps if s.kind == kind]


def _failure(d: DeploymentView, step: StepView, snap: Snapshot) -> Fail:
    what = "deploy" if step.kind == StepKind.DEPLOY else f"check '{step.name}'"
    summary = f"release {d.label} failed {what} in {d.environment}: {step.outcome or 'no detail'}"
    evidence = {"step_id": step.id, "step": step.name, "kind": step.kind.value, **step.evidence}
    stopped = _stopped_previous(d, step, snap)
    if stopped is not None:
        summary += f"; nothing runs in {d.environment} now: {stopped.label} was stopped before the deploy failed"
    rollback_to = _rollback_target(d, step, snap, stopped is not None)
    if rollback_to is not None:
        summary += f"; rolling back to {rollback_to.label} (on_failure: rollback) and vetoing {d.label} there"
        evidence["rollback_to"] = rollback_to.label
    decision = Decision(
        d.app,
        d.environment,
        Verdict.VETO,
        "FailedReleaseStops",
        summary,
        reasons=(step.outcome,),
        evidence=evidence,
        deployment_id=d.id,
        release_id=d.release_id,
    )
    return Fail(
        decision,
        deployment_id=d.id,
        step_id=step.id,
        summary=summary,
        evidence=evidence,
        rollback_to_release_id=rollback_to.release_id if rollback_to else None,
        previous_stopped=stopped is not None,
    )


def _stopped_previous(d: DeploymentView, step: StepView, snap: Snapshot) -> ReleaseAt | None:
    """The release that ran in ``d``'s place, when ``d``'s failed deploy step says its driver stopped it."""
    if step.kind != StepKind.DEPLOY or not step.evidence.get("previous_stopped"):
        return None
    placed = snap.placements.get((d.app, d.environment))
    if placed is None or placed.health == Health.STOPPED or placed.current.release_id == d.release_id:
        return None
    return placed.current


def _rollback_target(d: DeploymentView, step: StepView, snap: Snapshot, stopped: bool) -> ReleaseAt | None:
    """With ``on_failure: rollback``, a release whose checks failed (so it runs, failing) is followed by
    its place's last good release, if there is one other than itself; so is a failed deploy step that
    stopped the release running before it (``stopped``). Any other failed deploy step left the previous
    release running: nothing to roll back."""
    policy = snap.apps.get(d.app)
    if policy is None or policy.on_failure.get(d.environment) != "rollback":
        return None
    if step.kind != StepKind.CHECK and not stopped:
        return None
    if d.override == Override.ROLLBACK:
        return None  # a rollback that fails is not rolled back in turn: a person decides
    placed = snap.placements.get((d.app, d.environment))
    good = placed.last_good if placed else None
    if good is None or good.release_id == d.release_id:
        return None
    return good


def advance_active(d: DeploymentView, snap: Snapshot, now: datetime) -> Intent | None:
    """Move a deploying, verifying or baking deployment on, from the states of its steps."""
    if d.cancel_requested:
        return _advance_cancelled(d)
    if d.state == DeploymentState.DEPLOYING:
        return _advance_deploying(d, snap)
    if d.state == DeploymentState.VERIFYING:
        return _advance_verifying(d, snap)
    if d.state == DeploymentState.BAKING:
        return _advance_baking(d, snap, now)
    return None


def _advance_cancelled(d: DeploymentView) -> Intent | None:
    """Cancelled by an operator: queued steps never run; once no step runs any more (the holder saw the
    request at its heartbeat and stopped its driver), the deployment ends and frees its locks."""
    queued = tuple(s.id for s in d.steps if s.state == StepState.QUEUED)
    if queued:
        return CancelSteps(None, deployment_id=d.id, step_ids=queued)
    if any(s.state == StepState.RUNNING for s in d.steps):
        return None
    return Cancel(None, deployment_id=d.id)


def _advance_deploying(d: DeploymentView, snap: Snapshot) -> Intent | None:
    deploys = _step(d, StepKind.DEPLOY)
    if not deploys or not deploys[-1].state.terminal:
        return None
    last = deploys[-1]
    if last.state != StepState.SUCCEEDED:
        return _failure(d, last, snap)
    policy = snap.apps.get(d.app)
    names = policy.checks.get(d.environment, ()) if policy else ()
    if not names:
        return Succeed(None, deployment_id=d.id, from_state=DeploymentState.DEPLOYING)
    return Verify(None, deployment_id=d.id, checks=names)


def _checks_outcome(d: DeploymentView, snap: Snapshot) -> Intent | bool | None:
    """One failed: cancel the queued ones and ask the running ones to stop (their holders stop them at
    their next heartbeat; their locks stay held until they have), then fail with the first failure as the
    evidence: a release known bad runs no longer than that. True when every check passed, False while
    some run."""
    checks = _step(d, StepKind.CHECK)
    failed = [s for s in checks if s.state == StepState.FAILED]
    if failed or any(s.state == StepState.CANCELLED for s in checks):
        queued = tuple(s.id for s in checks if s.state == StepState.QUEUED)
        running = [s for s in checks if s.state == StepState.RUNNING]
        to_stop = tuple(s.id for s in running if not s.stopping) if failed else ()
        if queued or to_stop:
            return CancelSteps(None, deployment_id=d.id, step_ids=queued, stop=to_stop)
        if running:
            return None
        culprit = failed[0] if failed else next(s for s in checks if s.state == StepState.CANCELLED)
        return _failure(d, culprit, snap)
    return bool(checks) and all(s.state == StepState.SUCCEEDED for s in checks)


def _advance_verifying(d: DeploymentView, snap: Snapshot) -> Intent | None:
    """All checks passed: succeed, or start baking on the bake tier."""
    outcome = _checks_outcome(d, snap)
    if outcome is not True:
        return outcome or None
    policy = snap.apps.get(d.app)
    bake = policy.bake.get(d.environment, 0.0) if policy and policy.tier == "bake" else 0.0
    if bake > 0 and policy is not None:
        return Bake(
            None,
            deployment_id=d.id,
            seconds=bake,
            checks=policy.checks.get(d.environment, ()),
            interval=policy.bake_interval.get(d.environment, 60.0),
        )
    return Succeed(None, deployment_id=d.id, from_state=DeploymentState.VERIFYING)


def _advance_baking(d: DeploymentView, snap: Snapshot, now: datetime) -> Intent | None:
    """Baking: a failed round is a failure; once the bake time is over and no round is left, succeed;
    otherwise, when the last round passed, queue the next one."""
    outcome = _checks_outcome(d, snap)
    if outcome is not True:
        return outcome or None
    policy = snap.apps.get(d.app)
    if d.bake_until is None or now >= d.bake_until or policy is None:
        return Succeed(None, deployment_id=d.id, from_state=DeploymentState.BAKING)
    # rounds fall on the bake's own schedule (since + k x interval), however late this pass runs
    interval = policy.bake_interval.get(d.environment, 60.0)
    since = d.baking_since or now
    rounds = int((now - since).total_seconds() // interval) + 1
    next_round = since + timedelta(seconds=rounds * interval)
    if next_round >= d.bake_until:
        return None  # no round before the end: the planner passes again when the bake is over
    after = (next_round - now).total_seconds()
    return RepeatChecks(None, deployment_id=d.id, checks=policy.checks.get(d.environment, ()), after=after)


def baking_left(d: DeploymentView, now: datetime) -> str:
    """ "12m of 30m left", for why."""
    if d.bake_until is None or d.baking_since is None:
        return ""
    total = (d.bake_until - d.baking_since).total_seconds()
    left = max(0.0, (d.bake_until - now).total_seconds())
    return f"baking: {_minutes(left)} of {_minutes(total)} left"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m" if seconds >= 60 else f"{int(seconds)}s"


def promote_succeeded(app: str, environment: str, snap: Snapshot, now: datetime) -> Intent | None:
    """After a release passes an environment, send it to the next one (auto tier), or wait for a person
    before the last environment (manual tier). What is promoted is the release current and healthy
    there: after a rollback, the release rolled back to; never one vetoed in the target."""
    placed = snap.placements.get((app, environment))
    policy = snap.apps.get(app)
    if placed is None or policy is None or environment not in snap.environments:
        return None  # removed from config since: nothing to promote from there
    if placed.health != Health.HEALTHY:
        return None
    done = placed.current
    target = snap.next_environment(environment)
    if target is None:
        return None
    there = snap.placements.get((app, target))
    if there is not None and there.current.release_id >= done.release_id and there.health != Health.STOPPED:
        return None  # already runs this release or a newer one
    attempt = Attempt(app, target, done.release_id)
    veto = next((o for o in stopping(attempt, snap.holds, snap.hold_policy, now) if o.kind == "veto"), None)
    if veto is not None:
        decision = Decision(
            app,
            target,
            Verdict.VETO,
            veto.rule,
            veto.summary,
            reasons=(veto.hold.reason,) if veto.hold else (),
            evidence={**veto.evidence(), "release": done.label},
            release_id=done.release_id,
        )
        return Note(decision)
    rolled_back = rolled_back_before(app, done.release_id, target, snap)
    if rolled_back is not None:
        summary = (
            f"{done.label} will not go on to {target}: it was rolled back in {rolled_back.environment} by "
            f"{rolled_back.actor} ({rolled_back.reason}); promote it by hand to send it anyway"
        )
        decision = Decision(
            app,
            target,
            Verdict.VETO,
            "WithdrawRolledBackRelease",
            summary,
            reasons=(rolled_back.reason,),
            evidence={"release": done.label, "veto": rolled_back.id, "vetoed_in": rolled_back.environment},
            release_id=done.release_id,
        )
        return Note(decision)
    if (done.release_id, target) in snap.deployed_releases:
        return None
    if policy.tier == "manual" and target == snap.environments[-1]:
        summary = (
            f"waiting for promotion — manual tier: {policy.reason}. Release {done.label} passed "
            f"{environment}; run: conveyor promote {app} --to {target}"
        )
        decision = Decision(
            app,
            target,
            Verdict.WAIT,
            "ManualTierWaitsForPromotion",
            summary,
            reasons=(policy.reason or "",),
            evidence={"release": done.label, "passed": environment},
            release_id=done.release_id,
        )
        return Note(decision)
    summary = f"promoting {done.label}: it passed {environment}"
    decision = Decision(
        app,
        target,
        Verdict.PROCEED,
        "PromoteOnSuccess",
        summary,
        evidence={"release": done.label, "passed": environment, "deployment_id": done.deployment_id},
        release_id=done.release_id,
    )
    return Promote(
        decision,
        app=app,
        release_id=done.release_id,
        environment=target,
        origin_key=f"auto:{done.release_id}:{target}",
        from_deployment_id=done.deployment_id,
    )
