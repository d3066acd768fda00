"""What the planner sees: a consistent picture of policy and state at one moment.

Built by :mod:`conveyor.store.snapshot` from the database and the config; plain frozen data, so the
planner can be tested table by table without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from conveyor.domain.holds import HoldPolicy, HoldView, Window
from conveyor.domain.model import DeploymentState, Health, OnFailure, Override, StepKind, StepState, Tier


@dataclass(frozen=True)
class AppPolicy:
    name: str
    tier: Tier
    reason: str | None
    locks: dict[str, tuple[str, ...]]  # environment -> lock names
    checks: dict[str, tuple[str, ...]]  # environment -> check names
    on_failure: dict[str, OnFailure] = field(default_factory=dict)  # environment -> hold | rollback
    bake: dict[str, float] = field(default_factory=dict)  # environment -> seconds to bake (bake tier)
    bake_interval: dict[str, float] = field(default_factory=dict)  # environment -> seconds between rounds


@dataclass(frozen=True)
class StepView:
    id: int
    kind: StepKind
    name: str
    state: StepState
    outcome: str = ""
    evidence: dict[str, object] = field(default_factory=dict)
    stopping: bool = False  # running, and its holder was asked to stop it


@dataclass(frozen=True)
class DeploymentView:
    id: int
    app: str
    environment: str
    release_id: int  # release ids grow with time: a larger id is a newer release of that app
    label: str
    state: DeploymentState
    queued_at: datetime
    steps: tuple[StepView, ...] = ()
    explicit: bool = False  # asked for by a person (deploy, promote), not by a release or promotion
    override: Override | None = None  # a rollback or a forced deployment: see Override
    cancel_requested: bool = False  # an operator asked to cancel it while it ran
    baking_since: datetime | None = None  # when its checks first passed (bake tier)
    bake_until: datetime | None = None  # when its bake is over


@dataclass(frozen=True)
class ReleaseAt:
    """One release as deployed by one deployment in a place."""

    deployment_id: int
    release_id: int
    label: str


@dataclass(frozen=True)
class Placement:
    """What runs in one (app, environment), kept by the orchestrator alone (invariant 7).

    ``current``: the release whose deploy step last succeeded there, whatever its checks said after;
    ``health``: how its checks went; ``last_good``: the release that most recently passed every check there
    (after a rollback, an older release may be current and good)."""

    current: ReleaseAt
    health: Health
    last_good: ReleaseAt | None = None


@dataclass(frozen=True)
class Snapshot:
    environments: tuple[str, ...]
    apps: dict[str, AppPolicy]
    open_deployments: tuple[DeploymentView, ...]
    placements: dict[tuple[str, str], Placement]
    deployed_releases: frozenset[tuple[int, str]]  # (release_id, environment) that have any deployment
    holds: tuple[HoldView, ...]
    locks: dict[str, int]  # lock name -> holding deployment id
    # fingerprints of the latest decision per (app, environment, deployment): a decision already
    # standing is not recorded again
    decision_fingerprints: frozenset[str] = frozenset()
    windows: Mapping[str, Window] = field(default_factory=dict)  # environment -> its opening hours

    @property
    def hold_policy(self) -> HoldPolicy:
        return HoldPolicy(self.environments, self.windows)

    def env_index(self, environment: str) -> int:
        return self.environments.index(environment)

    # Indexes over open_deployments, built once per snapshot: rules ask them once per deployment, and a
    # scan each time made a pass quadratic in the number of apps.
    @cached_property
    def open_by_id(self) -> dict[int, DeploymentView]:
        return {d.id: d for d in self.open_deployments}

    @cached_property
    def release_labels(self) -> dict[tuple[str, int], str]:
        """The label of each (app, release id) an open deployment or a place names."""
        labels = {(app, p.current.release_id): p.current.label for (app, _), p in self.placements.items()}
        labels.update(((d.app, d.release_id), d.label) for d in self.open_deployments)
        return labels

    @cached_property
    def newest_open_release(self) -> dict[tuple[str, str], int]:
        """The newest release with an open deployment, per (app, environment)."""
        newest: dict[tuple[str, str], int] = {}
        for d in self.open_deployments:
            key = (d.app, d.environment)
            newest[key] = max(newest.get(key, d.release_id), d.release_id)
        return newest

    def next_environment(self, environment: str) -> str | None:
        i = self.env_index(environment) + 1
        return self.environments[i] if i < len(self.environments) else None
