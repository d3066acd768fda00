"""What the planner sees: a consistent picture of policy and state at one moment.

Built by :mod:`conveyor.store.snapshot` from the database and the config; plain frozen data, so the
planner can be tested table by table without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from conveyor.domain.model import DeploymentState, HoldKind, StepKind, StepState, Tier


@dataclass(frozen=True)
class AppPolicy:
    name: str
    tier: Tier
    reason: str | None
    locks: dict[str, tuple[str, ...]]  # environment -> lock names
    checks: dict[str, tuple[str, ...]]  # environment -> check names


@dataclass(frozen=True)
class StepView:
    id: int
    kind: StepKind
    name: str
    state: StepState
    outcome: str = ""
    evidence: dict[str, object] = field(default_factory=dict)


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


@dataclass(frozen=True)
class HoldView:
    id: int
    kind: HoldKind
    app: str | None  # None: every app
    environment: str | None  # None: every environment
    release_id: int | None
    reason: str
    actor: str
    since: datetime
    until: datetime | None = None
    label: str = ""  # the release label, for blocks

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True)
class Succeeded:
    """The newest release that succeeded in an (app, environment)."""

    deployment_id: int
    release_id: int
    label: str


@dataclass(frozen=True)
class Snapshot:
    environments: tuple[str, ...]
    apps: dict[str, AppPolicy]
    open_deployments: tuple[DeploymentView, ...]
    latest_succeeded: dict[tuple[str, str], Succeeded]
    deployed_releases: frozenset[tuple[int, str]]  # (release_id, environment) that have any deployment
    holds: tuple[HoldView, ...]
    locks: dict[str, int]  # lock name -> holding deployment id
    # fingerprints of the latest decision per (app, environment, deployment): a decision already
    # standing is not recorded again
    decision_fingerprints: frozenset[str] = frozenset()

    def env_index(self, environment: str) -> int:
        return self.environments.index(environment)

    # Indexes over open_deployments, built once per snapshot: rules ask them once per deployment, and a
    # scan each time made a pass quadratic in the number of apps.
    @cached_property
    def open_by_id(self) -> dict[int, DeploymentView]:
        return {d.id: d for d in self.open_deployments}

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
