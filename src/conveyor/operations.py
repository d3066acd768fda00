"""What a person or another tool asks conveyor to do: cut a release, deploy a version, promote, unblock.

Each operation validates its input against the config and the store, then writes through the same
records as the orchestrator (a pending deployment, a lifted hold), always with an Event that records the
operator action, its actor (``cli:<user>``, ``api:<token name>``) and the reason given, which is the
audit trail (:mod:`conveyor.domain.audit`).
Git work (fetching, resolving refs, listing commits) happens before the write transaction opens.
Errors a user can fix raise :class:`OperationError` with one clear sentence.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.domain.audit import DEPLOY, PROMOTE, RELEASE, UNBLOCK, OperatorAction
from conveyor.domain.model import DeploymentState, HoldKind
from conveyor.engine.orchestrator import create_deployment
from conveyor.repos import Commit, RepoMirror, mirror_path_for
from conveyor.store.database import Database
from conveyor.store.records import lift_hold, record_event
from conveyor.store.tables import Deployment, Hold, LatestSuccess, Release

OPEN_STATES = [s.value for s in DeploymentState if not s.terminal]


class OperationError(Exception):
    """A request conveyor refuses, with the reason in words; ``code`` is a stable machine name."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ReleaseResult:
    release_id: int
    label: str
    sha: str
    created: bool
    commits: int


class Operations:
    def __init__(self, config: Config, db: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self.config, self.db, self.clock = config, db, clock

    def mirror(self, app: str) -> RepoMirror:
        return RepoMirror(mirror_path_for(self.config.state_dir, app), self.config.app(app).repo)

    # -- releases -----------------------------------------------------------------------------------

    def create_release(
        self, app: str, ref: str | None = None, actor: str = "cli", reason: str | None = None
    ) -> ReleaseResult:
        """Resolve ``ref`` (default: the app's branch) and record it as a release heading for the first
        environment. Releasing the same commit twice returns the existing release (and records nothing)."""
        cfg = self.config.app(app)
        reason = reason_for(RELEASE, reason)
        mirror = self.mirror(app)
        mirror.ensure()
        mirror.fetch()
        sha = mirror.resolve(ref or cfg.branch)
        with self.db.read() as session:
            existing = _release_by_sha(session, app, sha)
            if existing is not None:
                return ReleaseResult(existing.id, existing.label, sha, False, len(existing.commits))
            previous = session.scalars(
                select(Release).where(Release.app == app).order_by(Release.id.desc()).limit(1)
            ).first()
            previous_sha = previous.sha if previous else None
        commits = mirror.commits_between(previous_sha, sha)
        label = mirror.describe(sha)
        with self.db.write() as session:
            again = _release_by_sha(session, app, sha)
            if again is not None:
                return ReleaseResult(again.id, again.label, sha, False, len(again.commits))
            now = self.clock()
            release = Release(
                app=app,
                sha=sha,
                label=label,
                ref=ref or cfg.branch,
                previous_release_id=previous.id if previous else None,
                commits=[_commit_json(c) for c in commits],
                created_at=now,
                created_by=actor,
            )
            session.add(release)
            session.flush()
            record_event(
                session,
                "release.created",
                at=now,
                actor=actor,
                app=app,
                release_id=release.id,
                message=f"release {label} of {app}: {len(commits)} commit(s)",
                payload={"sha": sha, "label": label, "ref": release.ref, "commits": len(commits)},
                action=RELEASE,
                reason=reason,
            )
            first = self.config.environments[0]
            create_deployment(
                session,
                release_id=release.id,
                app=app,
                environment=first,
                now=now,
                actor=actor,
                origin_key=f"release:{release.id}",
                message=f"new release {label} heads for {first}",
            )
            return ReleaseResult(release.id, label, sha, True, len(commits))

    def find_release(self, session: Session, app: str, version: str) -> Release:
        self.config.app(app)
        stmt = select(Release).where(Release.app == app)
        exact = session.scalars(stmt.where(or_(Release.label == version, Release.sha == version))).first()
        if exact is not None:
            return exact
        if len(version) >= 4:
            matches = list(session.scalars(stmt.where(Release.sha.startswith(version.lower()))))
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise OperationError(f"version {version!r} of {app} is ambiguous: give more of the SHA")
        raise OperationError(f"no release {version!r} of {app} (see: conveyor history {app})", "not_found")

    # -- deploy and promote --------------------------------------------------------------------------

    def deploy(self, app: str, version: str, environment: str, actor: str = "cli", reason: str | None = None) -> int:
        """Queue an explicit deployment of an existing release to an environment."""
        self.config.app(app)
        self.config.check_environment(environment)
        reason = reason_for(DEPLOY, reason)
        with self.db.write() as session:
            release = self.find_release(session, app, version)
            now = self.clock()
            d = create_deployment(
                session,
                release_id=release.id,
                app=app,
                environment=environment,
                now=now,
                actor=actor,
                origin_key=None,
                message=f"{actor} asked to deploy {release.label} to {environment}",
                action=DEPLOY,
                reason=reason,
            )
            return d.id

    def promote(self, app: str, to: str | None = None, actor: str = "cli", reason: str | None = None) -> int:
        """Send the newest release that passed the previous environment into ``to`` (default: the first
        environment behind its predecessor). This is how the manual tier reaches the last environment."""
        self.config.app(app)
        reason = reason_for(PROMOTE, reason)
        envs = self.config.environments
        with self.db.write() as session:
            live = _live_releases(session, app)
            target = self.config.check_environment(to) if to else _promotion_target(envs, live)
            if target is None:
                raise OperationError(
                    f"nothing to promote for {app}: every environment has its newest release", "conflict"
                )
            i = envs.index(target)
            if i == 0:
                raise OperationError(f"{target} is the first environment; cut a release instead", "conflict")
            source = envs[i - 1]
            candidate = live.get(source)
            if candidate is None:
                raise OperationError(f"no release of {app} has passed {source} yet", "conflict")
            current = live.get(target)
            if current is not None and current.id >= candidate.id:
                raise OperationError(f"{target} already runs {current.label} (newest passed {source})", "conflict")
            self._refuse_if_blocked(session, app, target, candidate)
            queued = session.scalars(
                select(Deployment.id).where(
                    Deployment.app == app,
                    Deployment.environment == target,
                    Deployment.release_id == candidate.id,
                    Deployment.state.in_(OPEN_STATES),
                )
            ).first()
            if queued is not None:
                raise OperationError(
                    f"{candidate.label} is already on its way to {target} (deployment #{queued})", "conflict"
                )
            now = self.clock()
            d = create_deployment(
                session,
                release_id=candidate.id,
                app=app,
                environment=target,
                now=now,
                actor=actor,
                origin_key=None,
                message=f"{actor} promoted {candidate.label} from {source} to {target}",
                action=PROMOTE,
                reason=reason,
            )
            return d.id

    def _refuse_if_blocked(self, session: Session, app: str, target: str, release: Release) -> None:
        envs = self.config.environments
        for hold in session.scalars(
            select(Hold).where(Hold.lifted_at.is_(None), or_(Hold.app == app, Hold.app.is_(None)))
        ):
            if hold.environment is not None and hold.environment in envs:
                if envs.index(target) < envs.index(hold.environment):
                    continue
                if hold.environment == target and hold.release_id is not None and release.id > hold.release_id:
                    continue
            raise OperationError(
                f"{app} is held in {hold.environment or 'every environment'}: {hold.reason} "
                f"(lift it with: conveyor unblock {app} --env {hold.environment} --reason ...)",
                "conflict",
            )

    def unblock(self, app: str, environment: str | None, reason: str, actor: str = "cli") -> int:
        """Lift the automatic block(s) on an app; returns how many were lifted."""
        self.config.app(app)
        if environment is not None:
            self.config.check_environment(environment)
        why = reason_for(UNBLOCK, reason) or ""
        with self.db.write() as session:
            stmt = select(Hold).where(Hold.app == app, Hold.kind == HoldKind.BLOCK.value, Hold.lifted_at.is_(None))
            if environment is not None:
                stmt = stmt.where(Hold.environment == environment)
            holds = list(session.scalars(stmt))
            if not holds:
                where = f" in {environment}" if environment else ""
                raise OperationError(f"{app} is not blocked{where}", "conflict")
            now = self.clock()
            for hold in holds:
                lift_hold(session, hold, now, actor, why, action=UNBLOCK)
            return len(holds)


def reason_for(action: OperatorAction, reason: str | None) -> str | None:
    """The reason as recorded (stripped; None when none was given), or an OperationError when
    ``action`` requires one and none was given."""
    text = (reason or "").strip()
    if action.reason_required and not text:
        raise OperationError(f"a reason is required to {action.name}")
    return text or None


def _commit_json(c: Commit) -> dict[str, str]:
    return {
        "sha": c.sha,
        "author": c.author_name,
        "email": c.author_email,
        "at": c.authored_at.isoformat(),
        "subject": c.subject,
        "message": c.message,
    }


def _release_by_sha(session: Session, app: str, sha: str) -> Release | None:
    return session.scalars(select(Release).where(Release.app == app, Release.sha == sha)).first()


def _live_releases(session: Session, app: str) -> dict[str, Release]:
    """Per environment, the newest release of ``app`` that succeeded there."""
    rows = session.execute(
        select(LatestSuccess.environment, Release)
        .join(Release, Release.id == LatestSuccess.release_id)
        .where(LatestSuccess.app == app)
    ).all()
    return {env: release for env, release in rows}


def _promotion_target(envs: tuple[str, ...], live: dict[str, Release]) -> str | None:
    for prev, nxt in itertools.pairwise(envs):
        if prev in live and (nxt not in live or live[nxt].id < live[prev].id):
            return nxt
    return None
