"""From GitHub's news to releases: candidates, CI results and the gate between them.

One code path serves webhooks and reconciliation (:mod:`conveyor.github.reconcile`): both come down to

- :meth:`Intake.propose`: a commit at the tip of an app's branch becomes a **candidate** (its commits with
  authors, GitHub logins and pull requests, its compare page); a newer candidate supersedes an older one
  still waiting;
- :meth:`Intake.observe`: results GitHub reported (check runs, check suites, commit statuses, workflow
  runs) are kept per (app, sha, name), the newest by GitHub's own time;
- :meth:`Intake.settle`: the candidate is judged (:func:`conveyor.domain.ci_gate.judge`): green makes a
  release through :meth:`conveyor.operations.Operations.create_release` (the worker fetches the mirror;
  the same commit never makes two releases), red records a Decision "CI failed: lint (url)" and a
  ``release.ci_failed`` event, past ``ci.timeout`` a Decision says CI never reported (and the same event,
  with ``timed_out``).

State changes of a candidate are conditional updates, so two workers settling the same candidate record
its failure once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from conveyor.config.resolved import AppConfig, Config
from conveyor.domain.ci_gate import Seen, judge, pull_request_numbers
from conveyor.domain.decisions import Decision as DecisionRecord
from conveyor.domain.model import Verdict
from conveyor.operations import GitHubLinks, Operations, ReleaseResult
from conveyor.store.database import Database
from conveyor.store.events import record_decisions, record_event
from conveyor.store.tables import Candidate, CiResult

log = logging.getLogger(__name__)

WAITING, RELEASED, CI_FAILED, CI_TIMED_OUT, SUPERSEDED = (
    "waiting",
    "released",
    "ci_failed",
    "ci_timed_out",
    "superseded",
)
OPEN = (WAITING, CI_FAILED, CI_TIMED_OUT)  # a newer CI result may still release these
CI_FAILED_RULE, CI_TIMED_OUT_RULE = "CiFailed", "CiTimedOut"
ACTOR = "github"


@dataclass(frozen=True)
class PushedCommit:
    sha: str
    message: str
    author: str | None = None
    email: str | None = None
    login: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sha": self.sha,
            "subject": self.message.split("\n", 1)[0],
            "author": self.author,
            "email": self.email,
            "login": self.login,
            "pull_requests": pull_request_numbers(self.message),
        }


@dataclass(frozen=True)
class Proposal:
    """A commit at the tip of an app's branch, with what came with it."""

    app: str
    sha: str
    branch: str
    commits: Sequence[PushedCommit] = ()
    compare_url: str | None = None
    repo_url: str | None = None


@dataclass(frozen=True)
class Observation:
    name: str
    state: str  # pending | success | failure
    url: str | None
    source: str  # check_run | check_suite | status | workflow_run
    reported_at: datetime


@dataclass
class Outcome:
    """What handling one piece of news did: its note, and the candidates to settle afterwards."""

    notes: list[str] = field(default_factory=list)
    to_settle: set[tuple[str, str]] = field(default_factory=set)
    ignored: bool = False


Releaser = Callable[[str, str, GitHubLinks], ReleaseResult]


class Intake:
    def __init__(
        self,
        config: Config,
        db: Database,
        clock: Callable[[], datetime],
        release: Releaser | None = None,
    ) -> None:
        self.config, self.db, self.clock = config, db, clock
        self._release = release or self._create_release
        self.operations = Operations(config, db, clock)
        self.by_repository: dict[str, list[AppConfig]] = {}
        for app in config.apps.values():
            if app.github:
                self.by_repository.setdefault(app.github.lower(), []).append(app)

    def apps_of(self, repository: str) -> list[AppConfig]:
        return self.by_repository.get(repository.lower(), [])

    # -- candidates --------------------------------------------------------------------------------

    def propose(self, proposal: Proposal) -> str:
        """Make ``proposal`` a candidate (once); returns a note for the delivery's record."""
        app = self.config.app(proposal.app)
        now = self.clock()
        with self.db.write() as session:
            existing = session.scalar(select(Candidate).where(Candidate.app == app.name, Candidate.sha == proposal.sha))
            if existing is not None:
                return f"{app.name}: {proposal.sha[:7]} is already a candidate ({existing.state})"
            superseded = _rowcount(
                session.execute(
                    update(Candidate)
                    .where(Candidate.app == app.name, Candidate.state == WAITING)
                    .values(state=SUPERSEDED, summary=f"superseded by {proposal.sha[:7]}", updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            )
            commits = [c.to_json() for c in proposal.commits]
            numbers = dict.fromkeys(n for c in commits for n in c["pull_requests"])
            deadline = now + timedelta(seconds=app.ci.timeout) if app.ci else None
            session.add(
                Candidate(
                    app=app.name,
                    sha=proposal.sha,
                    branch=proposal.branch,
                    state=WAITING,
                    commits=commits,
                    pull_requests=[_pull(proposal.repo_url, n) for n in numbers],
                    compare_url=proposal.compare_url,
                    repo_url=proposal.repo_url,
                    ci={},
                    summary=_waiting(app),
                    created_at=now,
                    deadline_at=deadline,
                    updated_at=now,
                )
            )
        also = f"; superseded {superseded} older candidate(s)" if superseded else ""
        return f"{app.name}: {proposal.sha[:7]} is a candidate{also}"

    def observe(self, app: AppConfig, sha: str, observations: Iterable[Observation]) -> list[str]:
        """Keep the results for ``app``'s required names; returns the names kept."""
        required = set(app.ci.required) if app.ci else set()
        wanted = [o for o in observations if o.name in required]
        if not wanted:
            return []
        now = self.clock()
        with self.db.write() as session:
            for o in wanted:
                row = session.get(CiResult, (app.name, sha, o.name))
                if row is None:
                    session.add(
                        CiResult(
                            app=app.name,
                            sha=sha,
                            name=o.name,
                            state=o.state,
                            url=o.url,
                            source=o.source,
                            reported_at=o.reported_at,
                            received_at=now,
                        )
                    )
                elif row.reported_at <= o.reported_at:
                    row.state, row.url, row.source, row.reported_at = o.state, o.url, o.source, o.reported_at
                    row.received_at = now
        return [o.name for o in wanted]

    def is_open_candidate(self, app: str, sha: str) -> bool:
        """Whether ``sha`` is ``app``'s newest candidate, still to be released."""
        with self.db.read() as session:
            candidate = _newest_open(session, app)
        return candidate is not None and candidate.sha == sha

    # -- the gate -----------------------------------------------------------------------------------

    def settle_open(self) -> bool:
        """Settle every app's newest open candidate (timeouts, a release that failed before); True if a
        release was made."""
        with self.db.read() as session:
            newest = select(func.max(Candidate.id)).group_by(Candidate.app)
            rows = session.execute(
                select(Candidate.app, Candidate.sha).where(Candidate.id.in_(newest), Candidate.state.in_(OPEN))
            ).all()
        return any([self.settle(app, sha) for app, sha in rows if app in self.config.apps])

    def settle(self, app_name: str, sha: str) -> bool:
        """Judge the candidate (app, sha) if it is its app's newest open one; True if a release was made."""
        app = self.config.app(app_name)
        now = self.clock()
        with self.db.read() as session:
            candidate = _newest_open(session, app.name)
            if candidate is None or candidate.sha != sha:
                return False
            seen = {
                r.name: Seen(r.state, r.url, r.source)
                for r in session.scalars(select(CiResult).where(CiResult.app == app.name, CiResult.sha == sha))
            }
            candidate_id, state, deadline = candidate.id, candidate.state, candidate.deadline_at
            seen_before, summary_before = candidate.ci, candidate.summary
        verdict = judge(app.ci.required if app.ci else (), seen, now, deadline)
        ci = {name: {"state": s.state, "url": s.url, "source": s.source} for name, s in seen.items()}
        if verdict.outcome == "green":
            with self.db.read() as session:  # only now: it reads every candidate since the last release
                links = self._links(session, app.name, candidate)
            result = self._release(app.name, sha, links)
            with self.db.write() as session:
                _move(session, candidate_id, OPEN, RELEASED, verdict.summary, now, ci=ci, release_id=result.release_id)
            log.info("%s: %s passed CI; release %s", app.name, sha[:7], result.label)
            return result.created
        if verdict.outcome == "red" and state != CI_FAILED:
            self._fail(
                app, candidate_id, sha, CI_FAILED, CI_FAILED_RULE, verdict.summary, ci, now, seen, verdict.failed
            )
        elif verdict.outcome == "timed_out" and state == WAITING:
            self._fail(app, candidate_id, sha, CI_TIMED_OUT, CI_TIMED_OUT_RULE, verdict.summary, ci, now, seen, None)
        elif verdict.outcome == "pending" and (ci, verdict.summary) != (seen_before, summary_before):
            with self.db.write() as session:
                _move(session, candidate_id, (WAITING,), WAITING, verdict.summary, now, ci=ci)
        return False

    def _fail(
        self,
        app: AppConfig,
        candidate_id: int,
        sha: str,
        to: str,
        rule: str,
        summary: str,
        ci: dict[str, Any],
        now: datetime,
        seen: dict[str, Seen],
        failed: str | None,
    ) -> None:
        environment = self.config.environments[0]
        sentence = f"{sha[:7]} was not released: {summary}"
        with self.db.write() as session:
            if not _move(session, candidate_id, OPEN, to, summary, now, ci=ci, unless=to):
                return
            evidence = {"sha": sha, "ci": ci}
            record_decisions(
                session,
                [DecisionRecord(app.name, environment, Verdict.SKIP, rule, sentence, (summary,), evidence)],
                now,
            )
            # a CI that never reported keeps a merge from production as surely as a red one: the team hears
            url = seen[failed].url if failed else None
            record_event(
                session,
                "release.ci_failed",
                at=now,
                actor=ACTOR,
                app=app.name,
                message=f"{app.name}: {sentence}",
                payload={
                    "sha": sha,
                    "check": failed,
                    "url": url,
                    "ci": ci,
                    "timed_out": to == CI_TIMED_OUT,
                },
            )
        log.warning("%s: %s", app.name, sentence)

    def _links(self, session: Session, app: str, candidate: Candidate) -> GitHubLinks:
        """Logins and pull requests of every commit the candidates since the last released one brought."""
        last = session.scalar(select(func.max(Candidate.id)).where(Candidate.app == app, Candidate.state == RELEASED))
        rows = session.scalars(select(Candidate).where(Candidate.app == app, Candidate.id > (last or 0)))
        logins: dict[str, str] = {}
        pulls: dict[str, tuple[int, ...]] = {}
        for row in rows:
            for c in row.commits:
                if c.get("login"):
                    logins[c["sha"]] = c["login"]
                if c.get("pull_requests"):
                    pulls[c["sha"]] = tuple(c["pull_requests"])
        return GitHubLinks(candidate.repo_url, logins, pulls, candidate.compare_url)

    def _create_release(self, app: str, sha: str, links: GitHubLinks) -> ReleaseResult:
        return self.operations.create_release(
            app, sha, actor=ACTOR, reason=f"CI passed on {sha[:7]}" if self.config.app(app).ci else None, links=links
        )


def _newest_open(session: Session, app: str) -> Candidate | None:
    newest = session.scalars(
        select(Candidate).where(Candidate.app == app).order_by(Candidate.id.desc()).limit(1)
    ).first()
    return newest if newest is not None and newest.state in OPEN else None


def _move(
    session: Session,
    candidate_id: int,
    from_states: Sequence[str],
    to: str,
    summary: str,
    now: datetime,
    *,
    ci: dict[str, Any],
    release_id: int | None = None,
    unless: str | None = None,
) -> bool:
    """Move the candidate from one of ``from_states`` (and not already ``unless``); False if it was not."""
    states = [s for s in from_states if s != unless]
    values: dict[str, Any] = {"state": to, "summary": summary, "ci": ci, "updated_at": now}
    if release_id is not None:
        values["release_id"] = release_id
    stmt = update(Candidate).where(Candidate.id == candidate_id, Candidate.state.in_(states)).values(**values)
    return bool(_rowcount(session.execute(stmt.execution_options(synchronize_session=False))))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0))


def _waiting(app: AppConfig) -> str:
    return f"waiting for CI: {', '.join(app.ci.required)}" if app.ci else "no CI required"


def _pull(repo_url: str | None, number: int) -> dict[str, Any]:
    return {"number": number, "url": f"{repo_url}/pull/{number}" if repo_url else None}
