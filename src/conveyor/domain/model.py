"""The domain's vocabulary: states, verdicts and the value objects the planner and judge reason about.

Pure: nothing here touches a database, the network, a process or the wall clock. Times are passed in.

Deployment states::

    pending -> waiting -> deploying -> verifying -> succeeded
                                   \\-> failed        (a deploy or check step failed)
    pending|waiting -> superseded                    (a newer release took its place before it started)
    pending|waiting -> cancelled                     (an operator cancelled it)
    deploying|verifying|baking -> cancelled          (an operator cancelled it; once its running step stopped)
    verifying -> baking -> succeeded                 (bake tier: checks repeat until the bake time is over)

Terminal states (succeeded, failed, superseded, cancelled, rolled_back) never change again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


class DeploymentState(enum.StrEnum):
    PENDING = "pending"
    WAITING = "waiting"
    DEPLOYING = "deploying"
    VERIFYING = "verifying"
    BAKING = "baking"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def active(self) -> bool:
        """Holding its locks: work is under way in the environment."""
        return self in (DeploymentState.DEPLOYING, DeploymentState.VERIFYING, DeploymentState.BAKING)


TERMINAL_STATES = frozenset(
    {
        DeploymentState.SUCCEEDED,
        DeploymentState.FAILED,
        DeploymentState.SUPERSEDED,
        DeploymentState.CANCELLED,
        DeploymentState.ROLLED_BACK,
    }
)


class StepKind(enum.StrEnum):
    DEPLOY = "deploy"
    CHECK = "check"


class StepState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (StepState.SUCCEEDED, StepState.FAILED, StepState.CANCELLED)


class HoldKind(enum.StrEnum):
    """What stops automatic starts. Windows are not rows: they come from the config.

    - ``block``: an (app, environment) after a failure there (automatic), or by hand; stops that
      environment and every later one for the app; lifted by ``unblock`` or, when automatic, by a newer
      release passing the environment (fix-forward).
    - ``freeze``: an operator's pause, scoped to every app or one, every environment or one; may expire.
    - ``stop``: stop-the-line, every app in one environment (an operator, or an alert).
    - ``veto``: one release of one app in one environment, after it was rolled back there: never
      started there again automatically.
    """

    BLOCK = "block"
    FREEZE = "freeze"
    STOP = "stop"
    VETO = "veto"


class Override(enum.StrEnum):
    """What a deployment asked for by a person may pass that an automatic one may not.

    ``rollback`` passes blocks, freezes, stops, windows and vetoes of its environment (it is the way out
    of one); ``force`` (break-glass, ``--force``) passes freezes, stops and windows. Neither passes a lock.
    """

    ROLLBACK = "rollback"
    FORCE = "force"


class Health(enum.StrEnum):
    """How the release that runs in an (app, environment) is doing, by its checks there.

    ``healthy``: its checks passed (or it has none); ``failing``: they failed; ``checking``: they are
    running; ``unknown``: none has finished (e.g. its deployment was cancelled while checking);
    ``stopped``: the deploy that came after it stopped it, then failed, so nothing conveyor deployed runs
    there (the place's current release is the one that ran last).
    """

    HEALTHY = "healthy"
    FAILING = "failing"
    CHECKING = "checking"
    UNKNOWN = "unknown"
    STOPPED = "stopped"


class Verdict(enum.StrEnum):
    """The planner's verdict for an (app, environment) at a moment."""

    PROCEED = "proceed"
    HOLD = "hold"
    WAIT = "wait"
    SUPERSEDE = "supersede"
    VETO = "veto"
    SKIP = "skip"


Tier = Literal["auto", "manual", "bake"]

OnFailure = Literal["hold", "rollback"]

Phase = Literal["pass", "fail", "error", "inconclusive"]


@dataclass(frozen=True)
class Measurement:
    """One observation by a check. ``phase`` is pass, fail, error or inconclusive."""

    phase: Phase
    message: str = ""
    value: str | None = None
    at: datetime | None = None

    @classmethod
    def passed(cls, message: str = "", value: str | None = None) -> Measurement:
        return cls("pass", message, value)

    @classmethod
    def failed(cls, message: str, value: str | None = None) -> Measurement:
        return cls("fail", message, value)

    @classmethod
    def errored(cls, message: str, value: str | None = None) -> Measurement:
        return cls("error", message, value)

    @classmethod
    def inconclusive(cls, message: str, value: str | None = None) -> Measurement:
        return cls("inconclusive", message, value)

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "message": self.message,
            "value": self.value,
            "at": self.at.isoformat() if self.at else None,
        }


@dataclass(frozen=True)
class CheckLimits:
    """How many measurements to take and how many bad ones to tolerate (Argo Rollouts' names).

    ``failure_limit``: failures tolerated; one more fails the check.
    ``consecutive_error_limit``: errors in a row tolerated; one more makes the check an error.
    ``inconclusive_limit``: inconclusive measurements tolerated; one more makes it inconclusive.
    """

    count: int = 1
    interval: float = 0.0
    initial_delay: float = 0.0
    failure_limit: int = 0
    consecutive_error_limit: int = 4
    inconclusive_limit: int = 0


CheckPhase = Literal["running", "successful", "failed", "error", "inconclusive"]


@dataclass(frozen=True)
class CheckOutcome:
    phase: CheckPhase
    reason: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.phase != "running"

    @property
    def ok(self) -> bool:
        return self.phase == "successful"
