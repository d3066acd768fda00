"""The parts of GitHub's webhook payloads conveyor reads, as lenient pydantic models.

GitHub adds fields to its payloads all the time, so every model ignores what it does not declare and
declares little: a payload that parses today still parses when GitHub grows it. A check run, a commit
status and a workflow run have the same shape in a webhook as in the REST API, so the reconciliation
(:mod:`conveyor.github.reconcile`) parses its reads with these models too.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Repository(Lenient):
    full_name: str
    html_url: str | None = None


class Person(Lenient):
    name: str | None = None
    email: str | None = None
    username: str | None = None  # the GitHub login, when GitHub knows the email


class PushCommit(Lenient):
    id: str
    message: str = ""
    url: str | None = None
    author: Person = Field(default_factory=Person)
    added: list[str] = Field(default_factory=list)
    modified: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class Push(Lenient):
    ref: str
    before: str
    after: str
    created: bool = False
    deleted: bool = False
    forced: bool = False
    compare: str | None = None
    commits: list[PushCommit] = Field(default_factory=list)
    head_commit: PushCommit | None = None
    repository: Repository

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None


class App(Lenient):
    slug: str | None = None
    name: str | None = None


class CheckRun(Lenient):
    name: str
    head_sha: str
    status: str | None = None
    conclusion: str | None = None
    details_url: str | None = None
    html_url: str | None = None
    started_at: str | None = None
    completed_at: str | None = None


class CheckRunEvent(Lenient):
    action: str | None = None
    check_run: CheckRun
    repository: Repository


class CheckSuite(Lenient):
    head_sha: str
    head_branch: str | None = None
    status: str | None = None
    conclusion: str | None = None
    app: App = Field(default_factory=App)
    updated_at: str | None = None
    url: str | None = None


class CheckSuiteEvent(Lenient):
    action: str | None = None
    check_suite: CheckSuite
    repository: Repository


class Status(Lenient):
    """A commit status, as the ``status`` event has it and as the combined status lists them."""

    context: str
    state: str
    target_url: str | None = None
    updated_at: str | None = None


class StatusEvent(Lenient):
    sha: str
    context: str
    state: str
    target_url: str | None = None
    updated_at: str | None = None
    repository: Repository


class WorkflowRun(Lenient):
    name: str | None = None
    head_sha: str
    head_branch: str | None = None
    status: str | None = None
    conclusion: str | None = None
    html_url: str | None = None
    updated_at: str | None = None


class WorkflowRunEvent(Lenient):
    action: str | None = None
    workflow_run: WorkflowRun
    repository: Repository


class Ping(Lenient):
    zen: str | None = None
    hook_id: int | None = None


class PullRequestEvent(Lenient):
    """Parsed only to be recorded as ignored: review apps will start from it."""

    action: str
    number: int
    repository: Repository


class CompareCommitAuthor(Lenient):
    name: str | None = None
    email: str | None = None


class CompareCommitDetail(Lenient):
    message: str = ""
    author: CompareCommitAuthor = Field(default_factory=CompareCommitAuthor)


class Login(Lenient):
    login: str | None = None


class CompareCommit(Lenient):
    sha: str
    commit: CompareCommitDetail = Field(default_factory=CompareCommitDetail)
    author: Login | None = None


class CompareFile(Lenient):
    filename: str
    previous_filename: str | None = None


class Compare(Lenient):
    """``GET /repos/{owner}/{repo}/compare/{base}...{head}``, for a push whose payload was cut short."""

    html_url: str | None = None
    commits: list[CompareCommit] = Field(default_factory=list)
    files: list[CompareFile] = Field(default_factory=list)


MODELS: dict[str, type[Lenient]] = {
    "push": Push,
    "check_run": CheckRunEvent,
    "check_suite": CheckSuiteEvent,
    "status": StatusEvent,
    "workflow_run": WorkflowRunEvent,
    "ping": Ping,
    "pull_request": PullRequestEvent,
}


def parse(event: str, body: dict[str, Any]) -> Lenient:
    """The payload of ``event`` as its model (``pydantic.ValidationError`` when it lacks what conveyor reads)."""
    return MODELS[event].model_validate(body)


Subject = tuple[str | None, str | None, str | None]  # repository, branch, commit
NO_SUBJECT: Subject = (None, None, None)


def about(event: str, body: object) -> Subject:
    """(repository, branch, commit) a delivery is about, read leniently from any event's body: what
    ``conveyor deliveries`` shows beside its outcome. Missing or odd fields are None, never an error."""
    if not isinstance(body, dict):
        return NO_SUBJECT

    def text(value: object, limit: int) -> str | None:
        return value[:limit] if isinstance(value, str) and value else None

    def field(container: object, key: str) -> object:
        return container.get(key) if isinstance(container, dict) else None

    full_name = text(field(body.get("repository"), "full_name"), 300)
    repository = full_name.lower() if full_name else None  # GitHub's names are case-insensitive
    branch: str | None = None
    sha: str | None = None
    if event == "push":
        ref = text(body.get("ref"), 300)
        branch = ref.removeprefix("refs/heads/") if ref and ref.startswith("refs/heads/") else ref
        sha = text(body.get("after"), 40)
    elif event == "status":
        sha = text(body.get("sha"), 40)
        branches = body.get("branches")
        first = branches[0] if isinstance(branches, list) and branches else None
        branch = text(field(first, "name"), 300)
    else:
        inner = field(body, {"check_run": "check_run", "check_suite": "check_suite"}.get(event, "workflow_run"))
        sha = text(field(inner, "head_sha"), 40)
        branch = text(field(inner, "head_branch"), 300) or text(field(field(inner, "check_suite"), "head_branch"), 300)
    return repository, branch, sha
