"""The planner: a pure function from a snapshot of state and ``now`` to intents with their decisions.

Order of a pass:
1. active deployments advance from their steps' results (verify, bake, succeed, fail, cancel);
2. the release current and healthy in each place is promoted (or waits for a person on the manual
   tier, or is noted as vetoed in the next environment);
3. not-started deployments, oldest first: superseded by a newer release, held (:mod:`.holds`: a block,
   veto, stop, freeze or closed window),
   waiting for a lock, or started. Locks are granted in arrival order: a waiter reserves the locks it
   needs, so a later arrival never overtakes it (no starvation), while deployments needing other locks
   go ahead at once.

Steps 2 and 3 see the successes of step 1 as done: a release that succeeds in this pass is promoted
in the same pass, and the locks it frees go to their next waiter at once. The orchestrator applies a
pass's intents in order, so the success is written first; should it not be, the promotion (which
names the deployment it comes from) and the start (whose lock is still taken) are refused.

A promotion whose deployment would start at once also carries that start (``Promote.then_start``),
applied in the promotion's transaction: it is judged as the next pass would judge the new deployment
(newest in arrival order, so after every deployment already waiting), and only when nothing is open in
its place yet. Anything else (a hold, a lock, an older deployment there) leaves it to the next pass,
which records why it waits.

The orchestrator re-checks every intent's precondition before applying it, so a plan computed from a
slightly stale snapshot is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from conveyor.domain import rules
from conveyor.domain.decisions import Decision, Intent, Note, Promote, Start, Succeed, Wait
from conveyor.domain.model import DeploymentState, Health, Verdict
from conveyor.domain.snapshot import DeploymentView, Placement, ReleaseAt, Snapshot


@dataclass
class Plan:
    intents: list[Intent] = field(default_factory=list)

    @property
    def changes_state(self) -> bool:
        return any(not isinstance(i, Note) for i in self.intents)


def plan_next(snap: Snapshot, now: datetime) -> Plan:
    plan = Plan()
    for d in snap.open_deployments:
        if d.state.active:
            intent = rules.advance_active(d, snap, now)
            if intent is not None:
                plan.intents.append(intent)
    snap = _after_successes(snap, [i.deployment_id for i in plan.intents if isinstance(i, Succeed)])
    promoted: list[tuple[int, Promote, str]] = []  # each promotion, its index in the plan and its label
    for app, environment in sorted(snap.placements):
        intent = rules.promote_succeeded(app, environment, snap, now)
        if intent is not None and _worth_recording(intent, snap):
            if isinstance(intent, Promote):
                promoted.append((len(plan.intents), intent, snap.placements[(app, environment)].current.label))
            plan.intents.append(intent)
    reserved: dict[str, DeploymentView] = {}
    waiting = _schedule_waiting(snap, now, reserved)
    for index, promote, label in promoted:
        plan.intents[index] = _start_at_once(promote, label, snap, now, reserved)
    plan.intents.extend(waiting)
    return plan


def _start_at_once(
    promote: Promote, label: str, snap: Snapshot, now: datetime, reserved: dict[str, DeploymentView]
) -> Promote:
    """The promotion, carrying the start of the deployment it creates when that one would start at once."""
    policy = snap.apps.get(promote.app)
    if policy is None or (promote.app, promote.environment) in snap.newest_open_release:
        return promote  # something is open there already: the next pass weighs the two
    d = DeploymentView(0, promote.app, promote.environment, promote.release_id, label, DeploymentState.PENDING, now)
    if rules.stopping_holds(d, snap, now):
        return promote
    needed = policy.locks.get(d.environment, ())
    waits = _lock_wait_decision(d, needed, snap, reserved)
    for name in needed:
        reserved.setdefault(name, d)
    if waits is not None:
        return promote
    return replace(promote, then_start=_start(d, needed, snap, now))


def _after_successes(snap: Snapshot, succeeding: list[int]) -> Snapshot:
    """The snapshot as it will be once these deployments have succeeded: each is current, healthy and
    last good in its place, and holds no locks."""
    if not succeeding:
        return snap
    ids = set(succeeding)
    placements = dict(snap.placements)
    for d in snap.open_deployments:
        if d.id in ids:
            here = ReleaseAt(d.id, d.release_id, d.label)
            placements[(d.app, d.environment)] = Placement(here, Health.HEALTHY, here)
    locks = {name: holder for name, holder in snap.locks.items() if holder not in ids}
    return replace(snap, placements=placements, locks=locks)


def _worth_recording(intent: Intent, snap: Snapshot) -> bool:
    """A Note only matters when its decision differs from the last one stored for that place."""
    if not isinstance(intent, Note) or intent.decision is None:
        return True
    d = intent.decision
    return d.fingerprint not in snap.decision_fingerprints


def _schedule_waiting(snap: Snapshot, now: datetime, reserved: dict[str, DeploymentView]) -> list[Intent]:
    """Start, hold or keep waiting the deployments not started yet, in arrival order; ``reserved`` gets
    the locks they hold or wait for."""
    waiting = sorted(
        (d for d in snap.open_deployments if d.state in (DeploymentState.PENDING, DeploymentState.WAITING)),
        key=lambda d: (d.queued_at, d.id),
    )
    intents: list[Intent] = []
    for d in waiting:
        policy = snap.apps.get(d.app)
        if policy is None or d.environment not in snap.environments:
            continue  # removed from config: left as it is, shown by status
        superseded = rules.supersede_older_release(d, snap)
        if superseded is not None:
            intents.append(superseded)
            continue
        obstacles = rules.stopping_holds(d, snap, now)
        if obstacles:
            intents.extend(_wait(d, rules.hold_decision(d, obstacles), snap))
            continue
        needed = policy.locks.get(d.environment, ())
        decision = _lock_wait_decision(d, needed, snap, reserved)
        for name in needed:
            reserved.setdefault(name, d)
        if decision is not None:
            intents.extend(_wait(d, decision, snap))
            continue
        intents.append(_start(d, needed, snap, now))
    return intents


def _start(d: DeploymentView, needed: tuple[str, ...], snap: Snapshot, now: datetime) -> Start:
    locks = f"locks {', '.join(needed)} acquired" if needed else "no lock needed"
    evidence: dict[str, object] = {"locks": list(needed)}
    # A rollback or a forced deployment may start past holds an automatic one would wait for: say which.
    passed = rules.stopping_holds(replace(d, override=None), snap, now) if d.override else ()
    if passed:
        names = ", ".join(f"{o.kind} #{o.hold.id}" if o.hold else o.kind for o in passed)
        held = f"{d.override.value if d.override else ''} past {names}"
        evidence |= {"override": d.override.value if d.override else None, "passed": [o.evidence() for o in passed]}
    else:
        held = "no hold"
    started = Decision(
        d.app,
        d.environment,
        Verdict.PROCEED,
        "StartWhenLocksFree",
        f"deploying {d.label} to {d.environment}: {held}, {locks}",
        evidence=evidence,
        deployment_id=d.id,
        release_id=d.release_id,
    )
    return Start(started, deployment_id=d.id, locks=needed, policy=snap.hold_policy)


def _lock_wait_decision(
    d: DeploymentView, needed: tuple[str, ...], snap: Snapshot, reserved: dict[str, DeploymentView]
) -> Decision | None:
    by_id = snap.open_by_id
    for name in needed:
        holder_id = snap.locks.get(name)
        if holder_id is not None and holder_id != d.id:
            holder = by_id.get(holder_id)
            who = f"deployment #{holder_id}" + (
                f" ({holder.app} {holder.label}, {holder.state.value})" if holder else ""
            )
            return Decision(
                d.app,
                d.environment,
                Verdict.WAIT,
                "WaitForLock",
                f"waiting for lock {name}, held by {who}",
                evidence={"lock": name, "holder_deployment": holder_id},
                deployment_id=d.id,
                release_id=d.release_id,
            )
        ahead = reserved.get(name)
        if ahead is not None:
            return Decision(
                d.app,
                d.environment,
                Verdict.WAIT,
                "WaitInArrivalOrder",
                f"waiting for lock {name}: deployment #{ahead.id} ({ahead.app} {ahead.label}) "
                "queued earlier and goes first",
                evidence={"lock": name, "ahead_deployment": ahead.id},
                deployment_id=d.id,
                release_id=d.release_id,
            )
    return None


def _wait(d: DeploymentView, decision: Decision, snap: Snapshot) -> list[Intent]:
    if d.state == DeploymentState.PENDING:
        return [Wait(decision, deployment_id=d.id)]
    if decision.fingerprint not in snap.decision_fingerprints:
        return [Note(decision)]
    return []
