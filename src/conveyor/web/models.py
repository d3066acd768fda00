"""The JSON the API reads and writes, as pydantic models, so ``/openapi.json`` describes every shape.

Read models mirror the CLI's ``--json`` output (``status``, ``why``, ``history``); times are ISO 8601
strings in UTC. Request bodies forbid unknown keys, so a misspelt field is a 422 naming it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, model_validator

from conveyor.web.openapi import EnvironmentSchema, SchemaPattern

# No control characters: values reach git (refs) and the database, and PostgreSQL refuses NUL in text.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def _ref_pattern() -> str:
    """Branch, tag and commit names git accepts (``git check-ref-format --allow-onelevel``), in a regular
    expression without look-arounds: slash-separated components of ``[A-Za-z0-9_+,=%-]`` parts joined by
    single dots, the first not starting with ``-``, no component ending in ``.lock``."""
    char = "A-Za-z0-9_+,=%-"
    part = f"[{char}]+"
    not_lock = (  # a part other than "lock"
        f"(?:[{char}]{{1,3}}|[{char}]{{5,}}|[{char.replace('a-z', 'a-km-z')}][{char}]{{3}}"
        f"|l[{char.replace('a-z', 'a-np-z')}][{char}]{{2}}|lo[{char.replace('a-z', 'abd-z')}][{char}]"
        f"|loc[{char.replace('a-z', 'a-jl-z')}])"
    )
    component_rest = f"(?:(?:\\.{part})*\\.{not_lock})?"
    first = f"[{char.removesuffix('-')}][{char}]*"
    return f"^{first}{component_rest}(?:/{part}{component_rest})*$"


REF_PATTERN = _ref_pattern()
Ref = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=_PRINTABLE), SchemaPattern(REF_PATTERN)]
Version = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)]
EnvironmentName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=_PRINTABLE), EnvironmentSchema()
]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")]

# -- reads ---------------------------------------------------------------------------------------------


class ObstacleModel(BaseModel):
    kind: str = Field(description="block, veto, stop, freeze or window")
    rule: str
    summary: str
    lift: str = Field(description="the exact command that lifts it")
    hold_id: int | None
    forceable: bool = Field(description="passed by a deploy or promote with force (break-glass)")


class EnvironmentStatus(BaseModel):
    release: str | None
    sha: str | None
    state: str | None
    since: str | None
    live: str | None = Field(description="the release that runs here: the same as current (kept for older clients)")
    summary: str
    deployment_id: int | None
    current: str | None = Field(
        description="the release whose deploy step last succeeded here, whatever its checks said: it runs"
    )
    current_sha: str | None
    current_deployment_id: int | None
    current_since: str | None
    health: str | None = Field(description="healthy | failing | checking | unknown; null before anything ran")
    last_good: str | None = Field(description="the release that most recently passed every check here")
    obstacles: list[ObstacleModel] = Field(
        description="what stops the next automatic start here now, most binding first"
    )
    awaiting_promotion: str | None = Field(
        description="a manual-tier release that passed the previous environment and waits for `conveyor promote`"
    )


class HoldModel(BaseModel):
    id: int
    kind: str
    app: str | None
    environment: str | None
    release: str | None
    release_id: int | None = None
    reason: str
    actor: str
    since: str | None
    until: str | None
    evidence: dict[str, Any]
    lift: str = Field(description="the exact command that lifts it")


class PullRequestModel(BaseModel):
    number: int
    url: str | None = None


class CandidateModel(BaseModel):
    """A commit pushed to the app's branch on GitHub, on its way to becoming a release."""

    sha: str
    state: str = Field(description="waiting | released | ci_failed | ci_timed_out | superseded")
    summary: str
    since: str | None
    ci: dict[str, Any] = Field(description="the required checks as last seen: {name: {state, url, source}}")
    commits: list[dict[str, Any]] = Field(description="sha, subject, author, email, login, pull_requests")
    pull_requests: list[PullRequestModel]
    compare_url: str | None


class AppStatusModel(BaseModel):
    name: str
    team: str
    tier: str
    groups: list[str]
    environments: dict[str, EnvironmentStatus]
    holds: list[HoldModel]
    candidates: list[CandidateModel] = Field(default_factory=list, description="candidates waiting for CI")


class AppList(BaseModel):
    apps: list[AppStatusModel]
    stops: list[HoldModel] = Field(description="stop-the-line holds in force (the banner of status)")


class DecisionModel(BaseModel):
    verdict: str
    rule: str
    summary: str
    at: str | None
    reasons: list[Any]
    evidence: dict[str, Any]


class FailedStep(BaseModel):
    kind: str
    name: str
    outcome: str
    measurements: list[Any]
    log_tail: list[str]


class WhyEnvironment(BaseModel):
    state: str | None
    release: str | None
    live: str | None
    current: str | None = None
    health: str | None = None
    last_good: str | None = None
    summary: str
    decision: DecisionModel | None
    failed_step: FailedStep | None
    obstacles: list[ObstacleModel]
    explanation: str


class PollingModel(BaseModel):
    """What polling last saw of the app's remote (apps with ``poll`` only)."""

    remote: str
    branch: str
    every: float
    polled_at: str | None
    answered_at: str | None
    head: str | None
    release: str | None
    error: str | None
    failing_since: str | None
    failures: int
    summary: str


class DeliveryModel(BaseModel):
    """A webhook delivery from GitHub as conveyor recorded it (``conveyor deliveries``)."""

    id: int
    delivery_id: str
    event: str
    received_at: str
    state: Literal["pending", "done", "ignored", "failed"]
    note: str
    attempts: int
    finished_at: str | None
    repository: str | None
    branch: str | None
    sha: str | None


class PushModel(BaseModel):
    summary: str
    delivery: DeliveryModel


class WhyModel(BaseModel):
    app: str
    tier: str
    environments: dict[str, WhyEnvironment]
    holds: list[HoldModel]
    polling: PollingModel | None = None
    candidate: CandidateModel | None = Field(default=None, description="the newest commit pushed on GitHub")
    push: PushModel | None = Field(
        default=None, description="the newest push to the app's branch, when it made no release, or pushes elsewhere"
    )


class AuthorModel(BaseModel):
    name: str | None = None
    email: str | None = None
    login: str | None = Field(default=None, description="the GitHub login, when the commit came from GitHub")


class HistoryEntry(BaseModel):
    deployment_id: int
    release: str
    sha: str
    environment: str
    state: str
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    created_by: str
    summary: str
    commits: list[str] = Field(description="subjects of the release's last five commits")
    authors: list[AuthorModel] = Field(default_factory=list, description="who wrote the release's commits")
    pull_requests: list[PullRequestModel] = Field(default_factory=list)
    compare_url: str | None = None
    current: bool = Field(default=False, description="this deployment's release is what runs in its environment now")
    override: str | None = Field(default=None, description="rollback or force, for a deployment that was one")


class HistoryModel(BaseModel):
    app: str
    deployments: list[HistoryEntry]


class CommitModel(BaseModel):
    sha: str = ""
    author: str = ""
    email: str = ""
    at: str = ""
    subject: str = ""
    message: str = ""
    login: str | None = None
    pull_requests: list[int] = Field(default_factory=list)


class DeploymentSummary(BaseModel):
    id: int
    environment: str
    state: str
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    created_by: str
    summary: str


class ReleaseModel(BaseModel):
    id: int
    app: str
    sha: str
    label: str
    ref: str
    previous_release_id: int | None
    created_at: str | None
    created_by: str
    commits: list[CommitModel]
    pull_requests: list[PullRequestModel] = Field(default_factory=list)
    compare_url: str | None = None
    deployments: list[DeploymentSummary]


class ReleaseRef(BaseModel):
    id: int
    label: str
    sha: str


class AttemptModel(BaseModel):
    attempt: int
    owner: str
    started_at: str | None
    finished_at: str | None
    outcome: str


class StepModel(BaseModel):
    id: int
    kind: str
    name: str
    state: str
    attempt: int
    due_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_seconds: float | None
    lease_owner: str | None
    lease_expires_at: str | None
    outcome: str
    measurements: list[Any]
    result: dict[str, Any]
    log: str
    attempts: list[AttemptModel]


class DeploymentModel(BaseModel):
    id: int
    app: str
    environment: str
    state: str
    release: ReleaseRef
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str | None
    created_by: str
    summary: str
    evidence: dict[str, Any]
    steps: list[StepModel]


class LogsDeployment(BaseModel):
    id: int
    environment: str
    state: str
    release: str
    sha: str
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    created_by: str
    summary: str


class LogsStep(BaseModel):
    id: int
    kind: str
    name: str
    state: str
    started_at: str | None
    finished_at: str | None
    outcome: str
    attempts: list[AttemptModel]
    log: str = Field(description="the step's log so far, secrets redacted")


class LogsModel(BaseModel):
    """What ``conveyor logs --json`` prints: one deployment, its steps, their attempts and logs."""

    app: str
    deployment: LogsDeployment
    steps: list[LogsStep]


class OperatorActionModel(BaseModel):
    id: int = Field(description="the event's id")
    at: str
    actor: str = Field(description="cli:<user> or api:<token name>")
    action: str = Field(description="release, deploy, promote, unblock, ...")
    kind: str = Field(description="the event kind that records it")
    app: str | None
    environment: str | None
    release: str | None
    deployment_id: int | None
    reason: str | None
    message: str


class AuditPage(BaseModel):
    actions: list[OperatorActionModel] = Field(description="newest first")
    next_before: int | None = Field(description="pass as `before` for the next, older page; null on the last page")


class ChainHead(BaseModel):
    seq: int = Field(description="position of the newest sealed event")
    hash: str


class ChainBreakModel(BaseModel):
    event_id: int | None = Field(description="the first event whose chain breaks; null when the head does")
    seq: int | None
    kind: str | None
    at: str | None
    problem: str


class AuditVerification(BaseModel):
    ok: bool
    verified: int = Field(description="events verified from the first up to the break or the head")
    head: ChainHead
    broken: ChainBreakModel | None


class Health(BaseModel):
    status: str
    database: str


class HookAnswer(BaseModel):
    """What ``POST /hooks/github`` did with a delivery: ``pending`` (recorded, to be worked on), ``ignored``
    (an event conveyor does not use; ``note`` says so), ``done`` (ping) or ``redelivery``."""

    delivery: str
    event: str
    outcome: str
    note: str = ""


# -- writes --------------------------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


OPTIONAL_REASON = "why; recorded in the audit trail"


class ReleaseRequest(Body):
    ref: Ref | None = Field(default=None, description="branch, tag or commit; default: the app's branch")
    reason: Reason | None = Field(default=None, description=OPTIONAL_REASON)


# A reason that says something: described so to clients (the server answers its own message otherwise).
_SAYS_SOMETHING = {"type": "string", "minLength": 1, "maxLength": 2000, "pattern": r"^[^\x00]*[^\s\x00][^\x00]*$"}


class Forcing(Body):
    """Break-glass: ``force`` passes stops, freezes and windows (never a block, a veto or a lock); it
    needs a ``reason``, recorded and notified as ``hold.overridden``."""

    # the schema says what the validator below checks: with force, a reason is required
    model_config = ConfigDict(json_schema_extra={"dependencies": {"force": ["reason"]}})

    force: bool = Field(default=False, description="pass stops, freezes and windows (break-glass)")
    reason: Annotated[Reason | None, WithJsonSchema(_SAYS_SOMETHING)] = Field(
        default=None, description="why; recorded in the audit trail; required with force"
    )

    @model_validator(mode="after")
    def _reason_with_force(self) -> Forcing:
        if self.force and not (self.reason or "").strip():
            raise ValueError("force needs a reason")
        return self


class DeployRequest(Forcing):
    version: Version = Field(description="a release label or (a prefix of at least 4 characters of) its SHA")
    environment: EnvironmentName


class PromoteRequest(Forcing):
    to: EnvironmentName | None = Field(default=None, description="default: the first environment that is behind")


# ISO 8601 or relative; the server parses it and names what is wrong (a time already past is a conflict)
_UNTIL_SCHEMA = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": "^[0-9]{1,6}[mhdw]$"},
    ]
}
Until = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=_PRINTABLE), WithJsonSchema(_UNTIL_SCHEMA)
]


class BlockRequest(Body):
    environment: EnvironmentName | None = Field(
        default=None, description="the environment it starts at (it also stops every later one); default: every"
    )
    reason: Reason


class FreezeRequest(Body):
    app: EnvironmentName | None = Field(default=None, description="default: every app")
    environment: EnvironmentName | None = Field(default=None, description="default: every environment")
    reason: Reason
    until: Until | None = Field(
        default=None, description="when it ends on its own: ISO 8601 (no offset: UTC) or relative (30m, 2h, 1d, 1w)"
    )


class StopRequest(Body):
    environment: EnvironmentName
    reason: Reason
    until: Until | None = Field(default=None, description="as for a freeze")


class UnfreezeRequest(Body):
    reason: Reason | None = None


class UnblockRequest(Body):
    environment: EnvironmentName | None = Field(default=None, description="default: every environment")
    reason: Reason = Field(description="why it is safe to go on; recorded in the audit trail")


class ReleaseCreated(BaseModel):
    id: int
    app: str
    label: str
    sha: str
    created: bool = Field(description="false when the commit already was a release (answered with 200)")
    commits: int
    environment: str = Field(description="the environment the release heads for")


class DeploymentQueued(BaseModel):
    deployment_id: int
    app: str
    environment: str
    release: str
    waits: str | None = Field(
        default=None, description="when a hold stops it from starting now: why, and what to do (e.g. rollback)"
    )


class Unblocked(BaseModel):
    app: str
    lifted: int


class HoldCreated(HoldModel):
    pass


class HoldList(BaseModel):
    holds: list[HoldModel]


class Unfrozen(BaseModel):
    id: int
    kind: str
    app: str | None
    environment: str | None


class RollbackRequest(Body):
    environment: EnvironmentName
    to: Version | None = Field(default=None, description="default: the last good release before what runs")
    reason: Reason = Field(description="why; recorded, and shown with the veto")


class RollbackQueued(BaseModel):
    deployment_id: int
    app: str
    environment: str
    release: str = Field(description="the release rolled back to")
    vetoed: str = Field(description="the release rolled back from, now vetoed in the environment")


class UnvetoRequest(Body):
    version: Version
    environment: EnvironmentName
    reason: Reason


class Unvetoed(BaseModel):
    app: str
    release: str
    environment: str
    hold_id: int


class CancelRequest(Body):
    reason: Reason


class AppCancelRequest(Body):
    environment: EnvironmentName | None = Field(default=None, description="default: every environment")
    reason: Reason


class Cancelled(BaseModel):
    cancelled: list[int] = Field(description="ids of the deployments cancelled (running ones stop shortly)")
