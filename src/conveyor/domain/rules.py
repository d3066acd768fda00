"""The planner's rules, each one small, named and tested on its own.

Every rule is a pure function of a :class:`Snapshot`, one deployment or (app, environment), and ``now``.
It returns an Intent or Decision, or None when it has nothing to say. :mod:`conveyor.domain.planner`
composes them in a fixed order.
"""

from __future__ import annotations

from datetime import datetime

from conveyor.domain.decisions import (
    CancelSteps,
    Decision,
    Fail,
    Intent,
    Note,
    Promote,
    Succeed,
    Supersede,
    Verify,
)
from conveyor.domain.model import DeploymentState, HoldKind, StepKind, StepState, Verdict
from conveyor.domain.snapshot import DeploymentView, HoldView, Snapshot, StepView


def _hhmm(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def supersede_older_release(d: DeploymentView, snap: Snapshot) -> Supersede | None:
    """A newer release queued, running or done in the same (app, environment) replaces one not started.

    An operator's explicit deployment of an older release (a rollback by hand) is only replaced by a
    newer one still to come, not by one already live: deploying an old version on purpose must work."""
    newest_open = snap.newest_open_release.get((d.app, d.environment), d.release_id)
    newer = [newest_open] if newest_open > d.release_id else []
    done = snap.latest_succeeded.get((d.app, d.environment))
    if done and done.release_id > d.release_id and not d.explicit:
        newer.append(done.release_id)
    if not newer:
        return None
    by = max(newer)
    summary = f"superseded: a newer release (#{by}) is going to {d.environment}; {d.label} will not deploy there"
    decision = Decision(
        d.app,
        d.environment,
        Verdict.SUPERSEDE,
        "SupersedeOlderRelease",
        summary,
        evidence={"superseded_release": d.release_id, "by_release": by},
        deployment_id=d.id,
        release_id=d.release_id,
    )
    return Supersede(decision, deployment_id=d.id, by_release_id=by)


def blocking_hold(d: DeploymentView, snap: Snapshot, now: datetime) -> HoldView | None:
    """The hold that stops ``d`` now, if any.

    A block from a failure in environment E stops the app in E and every later environment, except that
    a release newer than the failed one may still try E itself: that is how a fix goes forward.
    A freeze stops its scope (an app or every app; an environment or every environment) until lifted.
    """
    idx = snap.env_index(d.environment)
    for hold in snap.holds:
        if not hold.active(now) or (hold.app is not None and hold.app != d.app):
            continue
        if hold.kind == HoldKind.BLOCK and hold.environment is not None:
            hold_idx = snap.env_index(hold.environment) if hold.environment in snap.environments else -1
            if hold_idx < 0 or idx < hold_idx:
                continue
            if idx == hold_idx and hold.release_id is not None and d.release_id > hold.release_id:
                continue  # fix-forward attempt
            return hold
        if hold.environment is None or hold.environment == d.environment:
            return hold
    return None


def hold_decision(d: DeploymentView, hold: HoldView) -> Decision:
    if hold.kind == HoldKind.BLOCK:
        where = hold.environment or "every environment"
        summary = (
            f"blocked since {_hhmm(hold.since)}: {hold.reason}. Lifts when a release newer than "
            f"{hold.label or 'the failed one'} passes {where}, or run: conveyor unblock {d.app} "
            f"--env {where} --reason ..."
        )
        rule = "HoldWhileBlocked"
    else:
        summary = f"frozen since {_hhmm(hold.since)} by {hold.actor}: {hold.reason}"
        rule = "HoldWhileFrozen"
    return Decision(
        d.app,
        d.environment,
        Verdict.HOLD,
        rule,
        summary,
        reasons=(hold.reason,),
        evidence={
            "hold_id": hold.id,
            "kind": hold.kind.value,
            "actor": hold.actor,
            "since": hold.since.isoformat(),
            "hold_environment": hold.environment,
        },
        deployment_id=d.id,
        release_id=d.release_id,
    )


def _step(d: DeploymentView, kind: StepKind) -> list[StepView]:
    return [s for s in d.steps if s.kind == kind]


def _failure(d: DeploymentView, step: StepView) -> Fail:
    what = "deploy" if step.kind == StepKind.DEPLOY else f"check '{step.name}'"
    summary = f"release {d.label} failed {what} in {d.environment}: {step.outcome or 'no detail'}"
    evidence = {"step_id": step.id, "step": step.name, "kind": step.kind.value, **step.evidence}
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
    return Fail(decision, deployment_id=d.id, step_id=step.id, summary=summary, evidence=evidence)


def advance_active(d: DeploymentView, snap: Snapshot) -> Intent | None:
    """Move a deploying or verifying deployment on, from the states of its steps."""
    if d.state == DeploymentState.DEPLOYING:
        return _advance_deploying(d, snap)
    if d.state == DeploymentState.VERIFYING:
        return _advance_verifying(d)
    return None


def _advance_deploying(d: DeploymentView, snap: Snapshot) -> Intent | None:
    deploys = _step(d, StepKind.DEPLOY)
    if not deploys or not deploys[-1].state.terminal:
        return None
    last = deploys[-1]
    if last.state != StepState.SUCCEEDED:
        return _failure(d, last)
    policy = snap.apps.get(d.app)
    names = policy.checks.get(d.environment, ()) if policy else ()
    if not names:
        return Succeed(None, deployment_id=d.id)
    return Verify(None, deployment_id=d.id, checks=names)


def _advance_verifying(d: DeploymentView) -> Intent | None:
    """All checks passed: succeed. One failed: cancel the queued ones, let running ones finish (their
    locks stay held meanwhile), then fail with the first failure as the evidence."""
    checks = _step(d, StepKind.CHECK)
    failed = [s for s in checks if s.state == StepState.FAILED]
    if failed or any(s.state == StepState.CANCELLED for s in checks):
        queued = tuple(s.id for s in checks if s.state == StepState.QUEUED)
        if queued:
            return CancelSteps(None, deployment_id=d.id, step_ids=queued)
        if any(s.state == StepState.RUNNING for s in checks):
            return None
        culprit = failed[0] if failed else next(s for s in checks if s.state == StepState.CANCELLED)
        return _failure(d, culprit)
    if checks and all(s.state == StepState.SUCCEEDED for s in checks):
        return Succeed(None, deployment_id=d.id)
    return None


def promote_succeeded(app: str, environment: str, snap: Snapshot) -> Intent | None:
    """After a release succeeds in an environment, send it to the next one (auto tier), or wait for a
    person before the last environment (manual tier)."""
    done = snap.latest_succeeded.get((app, environment))
    policy = snap.apps.get(app)
    if done is None or policy is None or environment not in snap.environments:
        return None  # removed from config since: nothing to promote from there
    target = snap.next_environment(environment)
    if target is None:
        return None
    if (done.release_id, target) in snap.deployed_releases:
        return None
    there = snap.latest_succeeded.get((app, target))
    if there is not None and there.release_id >= done.release_id:
        return None  # already has this release or a newer one
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
