"""Small builders for planner snapshots, so a test row reads like the situation it describes.

Conventions: environments are integration → staging → production; release ``n`` is labelled ``vn``;
times are offsets in minutes from the fixed :data:`NOW`; an app's locks are ``app:<app>:<env>`` plus
``group:<group>:<env>`` for each of its groups, as the config builds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from conveyor.domain.decisions import (
    Cancel,
    CancelSteps,
    Fail,
    Intent,
    Note,
    Promote,
    Start,
    Succeed,
    Supersede,
    Verify,
    Wait,
)
from conveyor.domain.model import DeploymentState, Health, HoldKind, StepKind, StepState, Tier
from conveyor.domain.snapshot import (
    AppPolicy,
    DeploymentView,
    HoldView,
    Placement,
    ReleaseAt,
    Snapshot,
    StepView,
)

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
ENVS = ("integration", "staging", "production")

PENDING = DeploymentState.PENDING
WAITING = DeploymentState.WAITING
DEPLOYING = DeploymentState.DEPLOYING
VERIFYING = DeploymentState.VERIFYING
BAKING = DeploymentState.BAKING
SUCCEEDED = DeploymentState.SUCCEEDED

QUEUED = StepState.QUEUED
RUNNING = StepState.RUNNING
PASSED = StepState.SUCCEEDED
FAILED = StepState.FAILED
CANCELLED = StepState.CANCELLED


def minutes(offset: float) -> datetime:
    return NOW + timedelta(minutes=offset)


def app(
    name: str,
    *,
    tier: Tier = "auto",
    reason: str | None = None,
    groups: Iterable[str] = (),
    checks: Mapping[str, tuple[str, ...]] | None = None,
    environments: tuple[str, ...] = ENVS,
) -> AppPolicy:
    groups = tuple(groups)
    return AppPolicy(
        name=name,
        tier=tier,
        reason=reason,
        locks={env: (f"app:{name}:{env}", *(f"group:{g}:{env}" for g in groups)) for env in environments},
        checks={env: tuple((checks or {}).get(env, ())) for env in environments},
    )


def deploy_step(state: StepState, *, id: int = 11, outcome: str = "") -> StepView:
    return StepView(id, StepKind.DEPLOY, "deploy", state, outcome)


def check(name: str, state: StepState, *, id: int, outcome: str = "") -> StepView:
    return StepView(id, StepKind.CHECK, name, state, outcome)


def dep(
    id: int,
    app: str,
    env: str,
    release: int,
    state: DeploymentState = PENDING,
    queued_at_offset: float = 0,
    steps: Iterable[StepView] = (),
) -> DeploymentView:
    return DeploymentView(id, app, env, release, f"v{release}", state, minutes(queued_at_offset), tuple(steps))


def block(
    app: str, env: str, release: int, *, id: int = 1, until_offset: float | None = None, reason: str = ""
) -> HoldView:
    return HoldView(
        id, HoldKind.BLOCK, app, env, release, reason or f"release v{release} failed deploy in {env}",
        "conveyor", minutes(-60), minutes(until_offset) if until_offset is not None else None, f"v{release}",
    )  # fmt: skip


def freeze(
    app: str | None = None,
    env: str | None = None,
    *,
    id: int = 2,
    until_offset: float | None = None,
    reason: str = "end-of-quarter freeze",
    actor: str = "an operator",
) -> HoldView:
    return HoldView(
        id, HoldKind.FREEZE, app, env, None, reason, actor, minutes(-120),
        minutes(until_offset) if until_offset is not None else None,
    )  # fmt: skip


def done(release: int, deployment_id: int | None = None) -> Placement:
    """A place where release ``release`` runs, healthy, and is the last good one."""
    here = ReleaseAt(deployment_id if deployment_id is not None else 1000 + release, release, f"v{release}")
    return Placement(here, Health.HEALTHY, here)


def placed(
    release: int, health: Health = Health.HEALTHY, *, good: int | None = None, deployment_id: int | None = None
) -> Placement:
    """A place where ``release`` runs with ``health``; ``good`` is the last good release (default: none)."""
    here = ReleaseAt(deployment_id if deployment_id is not None else 1000 + release, release, f"v{release}")
    last = ReleaseAt(1000 + good, good, f"v{good}") if good is not None else None
    return Placement(here, health, last)


def veto(app: str, env: str, release: int, *, id: int = 3, actor: str = "cli:an-operator") -> HoldView:
    return HoldView(
        id, HoldKind.VETO, app, env, release, "bad gateway errors", actor, minutes(-30), None, f"v{release}"
    )


def snap(
    *,
    apps: Iterable[AppPolicy] | None = None,
    deployments: Iterable[DeploymentView] = (),
    holds: Iterable[HoldView] = (),
    locks: Mapping[str, int] | None = None,
    succeeded: Mapping[tuple[str, str], int | Placement] | None = None,
    deployed: Iterable[tuple[int, str]] = (),
    fingerprints: Mapping[tuple[str, str], str] | None = None,
    environments: tuple[str, ...] = ENVS,
) -> Snapshot:
    """A snapshot; ``apps`` defaults to an auto-tier policy for every app the deployments and successes
    name. ``succeeded`` maps (app, env) to the release running there healthy (a number), or a
    :class:`Placement`."""
    deployments = tuple(deployments)
    latest = {k: v if isinstance(v, Placement) else done(v) for k, v in (succeeded or {}).items()}
    if apps is None:
        names = {d.app for d in deployments} | {a for a, _ in latest}
        apps = [app(n, environments=environments) for n in sorted(names)]
    return Snapshot(
        environments=environments,
        apps={p.name: p for p in apps},
        open_deployments=deployments,
        placements=latest,
        deployed_releases=frozenset(deployed),
        holds=tuple(holds),
        locks=dict(locks or {}),
        decision_fingerprints=frozenset((fingerprints or {}).values()),
    )


def locks_held(d: DeploymentView, policy: AppPolicy | None = None) -> dict[str, int]:
    """The lock table while ``d`` is active: every lock its app needs in its environment."""
    names = policy.locks[d.environment] if policy else (f"app:{d.app}:{d.environment}",)
    return dict.fromkeys(names, d.id)


def brief(intent: Intent | None) -> tuple[object, ...] | None:
    """An intent as a short tuple for table rows: its kind and the fields that matter."""
    match intent:
        case None:
            return None
        case Start(deployment_id=did):
            return ("Start", did)
        case Wait(deployment_id=did, decision=decision):
            return ("Wait", did, decision.rule if decision else None)
        case Supersede(deployment_id=did, by_release_id=by):
            return ("Supersede", did, by)
        case Verify(deployment_id=did, checks=checks):
            return ("Verify", did, checks)
        case Succeed(deployment_id=did):
            return ("Succeed", did)
        case Fail(deployment_id=did, step_id=step_id):
            return ("Fail", did, step_id)
        case Cancel(deployment_id=did):
            return ("Cancel", did)
        case CancelSteps(deployment_id=did, step_ids=step_ids, stop=stop):
            return ("CancelSteps", did, step_ids, *((stop,) if stop else ()))
        case Promote(release_id=rid, environment=env, origin_key=key):
            return ("Promote", rid, env, key)
        case Note(decision=decision):
            assert decision is not None
            return ("Note", decision.app, decision.environment, decision.rule)
    raise AssertionError(f"unknown intent {intent!r}")
