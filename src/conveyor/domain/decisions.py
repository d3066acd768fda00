"""Decisions and intents: what the planner concluded and what it asks the orchestrator to do.

A Decision explains a verdict for an (app, environment) in plain words with evidence; it is stored
only when it differs from the previous one (by fingerprint), so the history reads as a list of changes.
An Intent is a request to change state; the orchestrator re-checks its precondition before applying it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from conveyor.domain.holds import HoldPolicy
from conveyor.domain.model import DeploymentState, Verdict


@dataclass(frozen=True)
class Decision:
    app: str
    environment: str
    verdict: Verdict
    rule: str
    summary: str
    reasons: tuple[str, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    deployment_id: int | None = None
    release_id: int | None = None

    @functools.cached_property  # a frozen dataclass: its fields never change, nor does this
    def fingerprint(self) -> str:
        body = json.dumps(
            [self.app, self.environment, self.verdict, self.rule, self.summary, self.deployment_id, self.release_id],
            default=str,
        )
        return hashlib.sha256(body.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Intent:
    """Base class; ``decision`` is recorded in the same transaction as the change."""

    decision: Decision | None


@dataclass(frozen=True)
class Note(Intent):
    """Record a decision without changing any state (a manual-tier wait, a veto)."""


@dataclass(frozen=True)
class Start(Intent):
    deployment_id: int
    locks: tuple[str, ...]
    # the environments and windows the start re-checks holds against, in its own transaction (None: no
    # re-check, for tests that start a deployment directly)
    policy: HoldPolicy | None = None

    def of(self, deployment_id: int) -> Start:
        """This start, of deployment ``deployment_id`` (one a promotion has just created)."""
        decision = replace(self.decision, deployment_id=deployment_id) if self.decision else None
        return replace(self, decision=decision, deployment_id=deployment_id)


@dataclass(frozen=True)
class Wait(Intent):
    deployment_id: int


@dataclass(frozen=True)
class Supersede(Intent):
    deployment_id: int
    by_release_id: int


@dataclass(frozen=True)
class Verify(Intent):
    deployment_id: int
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Succeed(Intent):
    """Refused unless the deployment is still in ``from_state`` with every step succeeded (and, from
    ``baking``, its bake over): deploying with no checks, verifying with all checks passed, baking done."""

    deployment_id: int
    from_state: DeploymentState = DeploymentState.DEPLOYING


@dataclass(frozen=True)
class Bake(Intent):
    """Checks passed on the bake tier: stay ``baking`` for ``seconds`` while the checks repeat."""

    deployment_id: int
    seconds: float
    checks: tuple[str, ...]
    interval: float


@dataclass(frozen=True)
class RepeatChecks(Intent):
    """While baking: queue another round of the checks, due ``after`` seconds from now."""

    deployment_id: int
    checks: tuple[str, ...]
    after: float


@dataclass(frozen=True)
class Cancel(Intent):
    """An operator asked to cancel an active deployment and none of its steps runs any more: end it
    ``cancelled`` and free its locks."""

    deployment_id: int


@dataclass(frozen=True)
class Fail(Intent):
    deployment_id: int
    step_id: int
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    # on_failure: rollback, and a last good release to go back to: deploy it at once, veto this one
    rollback_to_release_id: int | None = None
    # its deploy step stopped the release that ran in the place before failing: nothing runs there now
    previous_stopped: bool = False


@dataclass(frozen=True)
class CancelSteps(Intent):
    deployment_id: int
    step_ids: tuple[int, ...]  # queued: they never run
    stop: tuple[int, ...] = ()  # running: their holders are asked to stop them (a sibling check failed)


@dataclass(frozen=True)
class Promote(Intent):
    app: str
    release_id: int
    environment: str
    origin_key: str
    # the success it follows: the promotion is refused unless that deployment has succeeded
    from_deployment_id: int | None = None
    # the start of the deployment this promotion creates, when nothing would keep it waiting: applied
    # right after the promotion, in its transaction (its deployment id is not known before)
    then_start: Start | None = None
