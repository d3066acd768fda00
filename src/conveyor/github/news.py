"""Webhook deliveries and API reads, turned into the intake's three moves (propose, observe, settle).

:func:`handle` takes one delivery's event name and JSON body. A ``push`` to an app's branch (touching
its ``paths``) is proposed as a candidate; other branches, tags and branch deletions are ignored with
the reason. A push whose payload was cut short (GitHub sends at most 20 commits) is completed with the
compare API, when conveyor can read GitHub's API. CI events become observations of the apps of their
repository. :func:`reconcile` reads the same facts through the API for every GitHub app, so a conveyor
that missed webhooks (it was down) catches up by the same path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import select

from conveyor.config.resolved import AppConfig
from conveyor.domain.ci_gate import ci_state, touches
from conveyor.github.intake import Intake, Observation, Outcome, Proposal, PushedCommit
from conveyor.github.payloads import (
    CheckRun,
    CheckRunEvent,
    CheckSuiteEvent,
    Compare,
    Push,
    Status,
    StatusEvent,
    WorkflowRun,
    WorkflowRunEvent,
    parse,
)
from conveyor.github.reads import GitHubError, GitHubReads
from conveyor.store.tables import Release

log = logging.getLogger(__name__)

ZERO_SHA = "0" * 40
PUSH_COMMITS_CAP = 20  # GitHub lists at most this many commits in a push payload


def handle(intake: Intake, reads: GitHubReads | None, event: str, body: dict[str, Any]) -> Outcome:
    payload = parse(event, body)
    if isinstance(payload, Push):
        return _push(intake, reads, payload)
    if isinstance(payload, CheckRunEvent):
        return _observe(
            intake,
            payload.repository.full_name,
            payload.check_run.head_sha,
            [_check_run(payload.check_run, intake.clock())],
        )
    if isinstance(payload, CheckSuiteEvent):
        suite = payload.check_suite
        at = _time(suite.updated_at, intake.clock())
        state = ci_state(suite.status, suite.conclusion)
        names = dict.fromkeys(n for n in (suite.app.slug, suite.app.name) if n)
        found = [Observation(n, state, suite.url, "check_suite", at) for n in names]
        outcome = _observe(intake, payload.repository.full_name, suite.head_sha, found)
        if reads is not None and payload.action == "completed":
            # the suite's own check runs say more than the suite (a check_run webhook may have been
            # missed): read them, for the apps whose open candidate this commit is
            for app in intake.apps_of(payload.repository.full_name):
                if intake.is_open_candidate(app.name, suite.head_sha):
                    try:
                        outcome.notes += _read_ci(intake, reads, app, suite.head_sha)
                    except GitHubError as exc:  # no permission to read them: the suite itself still counts
                        outcome.notes.append(f"{app.name}: could not read the CI of {suite.head_sha[:7]}: {exc}")
                    outcome.to_settle.add((app.name, suite.head_sha))
                    outcome.ignored = False
        return outcome
    if isinstance(payload, StatusEvent):
        at = _time(payload.updated_at, intake.clock())
        found = [Observation(payload.context, ci_state(payload.state, None), payload.target_url, "status", at)]
        return _observe(intake, payload.repository.full_name, payload.sha, found)
    if isinstance(payload, WorkflowRunEvent):
        return _observe(
            intake,
            payload.repository.full_name,
            payload.workflow_run.head_sha,
            [_workflow_run(payload.workflow_run, intake.clock())],
        )
    return Outcome([f"conveyor does not use {event!r} events"], ignored=True)


def _push(intake: Intake, reads: GitHubReads | None, push: Push) -> Outcome:
    repo = push.repository.full_name
    if push.deleted or push.after == ZERO_SHA:
        return Outcome([f"{push.ref} was deleted"], ignored=True)
    branch = push.branch
    if branch is None:
        kind = "a tag push" if push.ref.startswith("refs/tags/") else "not a branch"
        return Outcome([f"{push.ref}: {kind}"], ignored=True)
    apps = intake.apps_of(repo)
    if not apps:
        return Outcome([f"no app follows {repo}"], ignored=True)
    following = [a for a in apps if a.branch == branch]
    if not following:
        branches = ", ".join(sorted({a.branch for a in apps}))
        return Outcome([f"push to {branch}: the apps of {repo} follow {branches}"], ignored=True)
    commits, files = _push_commits(push)
    outcome = Outcome()
    if len(push.commits) >= PUSH_COMMITS_CAP and reads is not None and push.before != ZERO_SHA:
        try:
            compare = Compare.model_validate(reads.compare(repo, push.before, push.after))
        except GitHubError as exc:
            # a force push whose old head GitHub no longer has, say: the push is still news, taken as
            # GitHub listed it (as without an API reader) rather than dropped
            outcome.notes.append(f"the compare API refused {push.before[:7]}...{push.after[:7]} ({exc.status})")
        else:
            # GitHub's compare has no login for a commit whose email no account claims; the push payload
            # may still name its author's (``username``): keep it rather than lose it
            listed = {c.sha: c.login for c in commits if c.login}
            commits = [_compare_commit(c, listed) for c in compare.commits]
            files = [name for f in compare.files for name in (f.filename, f.previous_filename) if name]
    for app in following:
        if not touches(files, app.paths):
            outcome.notes.append(f"{app.name}: {push.after[:7]} touches none of {', '.join(app.paths)}")
            continue
        proposal = Proposal(app.name, push.after, branch, commits, push.compare, push.repository.html_url)
        outcome.notes.append(intake.propose(proposal))
        outcome.to_settle.add((app.name, push.after))
    outcome.ignored = not outcome.to_settle
    return outcome


def _push_commits(push: Push) -> tuple[list[PushedCommit], list[str]]:
    listed = push.commits or ([push.head_commit] if push.head_commit else [])
    commits = [PushedCommit(c.id, c.message, c.author.name, c.author.email, c.author.username) for c in listed]
    files = [f for c in listed for f in (*c.added, *c.modified, *c.removed)]
    return commits, files


def _compare_commit(c: Any, listed: Mapping[str, str] = MappingProxyType({})) -> PushedCommit:
    login = (c.author.login if c.author else None) or listed.get(c.sha)
    return PushedCommit(c.sha, c.commit.message, c.commit.author.name, c.commit.author.email, login)


def _observe(intake: Intake, repo: str, sha: str, observations: list[Observation]) -> Outcome:
    apps = intake.apps_of(repo)
    if not apps:
        return Outcome([f"no app follows {repo}"], ignored=True)
    outcome = Outcome()
    for app in apps:
        kept = intake.observe(app, sha, observations)
        if kept:
            outcome.notes.append(
                f"{app.name}: {', '.join(f'{o.name} {o.state}' for o in observations if o.name in kept)} on {sha[:7]}"
            )
            outcome.to_settle.add((app.name, sha))
    if not outcome.to_settle:
        names = ", ".join(o.name for o in observations) or "nothing"
        outcome.notes.append(f"{names}: not required by any app of {repo}")
        outcome.ignored = True
    return outcome


def _check_run(run: CheckRun, now: datetime) -> Observation:
    at = _time(run.completed_at or run.started_at, now)
    return Observation(run.name, ci_state(run.status, run.conclusion), run.details_url or run.html_url, "check_run", at)


def _workflow_run(run: WorkflowRun, now: datetime) -> Observation:
    at = _time(run.updated_at, now)
    return Observation(run.name or "", ci_state(run.status, run.conclusion), run.html_url, "workflow_run", at)


def _time(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return default
    return at if at.tzinfo is not None else default


# -- reconciliation ---------------------------------------------------------------------------------


def _read_ci(intake: Intake, reads: GitHubReads, app: AppConfig, sha: str) -> list[str]:
    """Every CI result GitHub has for ``sha``, read through the API and observed."""
    if app.ci is None or app.github is None:
        return []
    now = intake.clock()
    found = [_check_run(CheckRun.model_validate(r), now) for r in reads.check_runs(app.github, sha)]
    for raw in reads.statuses(app.github, sha):
        s = Status.model_validate(raw)
        found.append(Observation(s.context, ci_state(s.state, None), s.target_url, "status", _time(s.updated_at, now)))
    found += [_workflow_run(WorkflowRun.model_validate(r), now) for r in reads.workflow_runs(app.github, sha)]
    kept = intake.observe(app, sha, found)
    return [f"{app.name}: read {', '.join(kept)} of {sha[:7]}"] if kept else []


def reconcile(intake: Intake, reads: GitHubReads, apps: Iterable[AppConfig]) -> bool:
    """For each GitHub app: its branch head as a candidate (unless already released), its CI read and
    settled. True if a release was made."""
    released = False
    for app in apps:
        if app.github is None:
            continue
        try:
            released |= _reconcile_app(intake, reads, app)
        except GitHubError as exc:  # this repository only (no access, renamed): the other apps go on
            log.warning("%s: reconciliation with %s refused: %s", app.name, app.github, exc)
    return released


def _reconcile_app(intake: Intake, reads: GitHubReads, app: AppConfig) -> bool:
    """One app's catch-up: GitHubUnavailable (GitHub down) ends the whole turn, a refusal only this app's."""
    assert app.github is not None
    head = reads.branch_head(app.github, app.branch)
    if head is None:
        log.warning("%s: GitHub has no branch %s in %s", app.name, app.branch, app.github)
        return False
    with intake.db.read() as session:
        previous = session.scalars(
            select(Release).where(Release.app == app.name).order_by(Release.id.desc()).limit(1)
        ).first()
        previous_sha = previous.sha if previous else None
    if previous_sha == head:
        return False
    proposal, files = _proposal(reads, app, head, previous_sha)
    if not touches(files, app.paths):
        return False
    intake.propose(proposal)
    _read_ci(intake, reads, app, head)
    return intake.settle(app.name, head)


def _proposal(reads: GitHubReads, app: AppConfig, head: str, previous: str | None) -> tuple[Proposal, list[str]]:
    """The head as a proposal, with the files it changed since the previous release (its own, without one)."""
    assert app.github is not None
    if previous is None:
        raw = reads.commit(app.github, head)
        compare = Compare.model_validate({"commits": [raw], "files": raw.get("files") or []})
        proposal = Proposal(app.name, head, app.branch, [_compare_commit(compare.commits[0])], None, _web_url(raw))
    else:
        compare = Compare.model_validate(reads.compare(app.github, previous, head))
        commits = [_compare_commit(c) for c in compare.commits]
        repo_url = compare.html_url.split("/compare/")[0] if compare.html_url else None
        proposal = Proposal(app.name, head, app.branch, commits, compare.html_url, repo_url)
    return proposal, [name for f in compare.files for name in (f.filename, f.previous_filename) if name]


def _web_url(commit: dict[str, Any]) -> str | None:
    url = commit.get("html_url")
    return url.split("/commit/")[0] if isinstance(url, str) and "/commit/" in url else None
