"""What a person or another tool asks conveyor to do: cut a release, deploy a version, promote, unblock.

Each operation validates its input against the config and the store, then writes through the same
records as the orchestrator (a pending deployment, a lifted hold, always with an Event naming the actor).
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
from conveyor.domain import rules
from conveyor.domain.model import DeploymentState, Health, HoldKind, Override
from conveyor.domain.snapshot import DeploymentView, Snapshot
from conveyor.engine.controls import cancel, queue_rollback
from conveyor.engine.orchestrator import create_deployment
from conveyor.repos import Commit, RepoMirror, mirror_path_for
from conveyor.store.database import Database
from conveyor.store.records import lift_hold, record_event
from conveyor.store.snapshot import load_holds
from conveyor.store.tables import Deployment, Hold, Placement, Release

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

    def create_release(self, app: str, ref: str | None = None, actor: str = "cli") -> ReleaseResult:
        """Resolve ``ref`` (default: the app's branch) and record it as a release heading for the first
        environment. Releasing the same commit twice returns the existing release."""
        cfg = self.config.app(app)
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

    def deploy(self, app: str, version: str, environment: str, actor: str = "cli") -> int:
        """Queue an explicit deployment of an existing release to an environment."""
        self.config.app(app)
        self.config.check_environment(environment)
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
            )
            return d.id

    def promote(self, app: str, to: str | None = None, actor: str = "cli") -> int:
        """Send the newest release that passed the previous environment into ``to`` (default: the first
        environment behind its predecessor). This is how the manual tier reaches the last environment."""
        self.config.app(app)
        envs = self.config.environments
        with self.db.write() as session:
            live = _healthy_releases(session, app)
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
            current = _running(session, app).get(target)
            if current is not None and current.id >= candidate.id:
                raise OperationError(f"{target} already runs {current.label} (healthy in {source})", "conflict")
            veto = _open_veto(session, app, target, candidate.id)
            if veto is not None:
                raise OperationError(
                    f"{candidate.label} is vetoed in {target}: rolled back by {veto.actor} ({veto.reason}); "
                    f"lift it with: conveyor unveto {app} {candidate.label} --env {target} --reason ...",
                    "conflict",
                )
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
            )
            return d.id

    def _refuse_if_blocked(self, session: Session, app: str, target: str, release: Release) -> None:
        envs = self.config.environments
        for hold in session.scalars(
            select(Hold).where(
                Hold.lifted_at.is_(None),
                or_(Hold.app == app, Hold.app.is_(None)),
                Hold.kind != HoldKind.VETO.value,  # a veto is about one release: see promote
            )
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
        if not reason.strip():
            raise OperationError("a reason is required to unblock")
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
                lift_hold(session, hold, now, actor, reason)
            return len(holds)

    # -- rollback, veto, cancel ----------------------------------------------------------------------

    def rollback(
        self, app: str, environment: str, reason: str, to: str | None = None, actor: str = "cli"
    ) -> RollbackResult:
        """Deploy an earlier release now (default: the last good one before what runs), passing the holds
        of that environment but never a lock; the release rolled back from is vetoed there."""
        self.config.app(app)
        self.config.check_environment(environment)
        if not reason.strip():
            raise OperationError("a reason is required to roll back")
        with self.db.write() as session:
            placed = session.get(Placement, (app, environment))
            if placed is None:
                raise OperationError(f"nothing of {app} runs in {environment}: nothing to roll back", "conflict")
            current = session.get(Release, placed.release_id)
            assert current is not None
            target = self.find_release(session, app, to) if to else _last_good_before(session, placed)
            if target is None:
                raise OperationError(
                    f"no release of {app} passed {environment} before {current.label}: name one with --to",
                    "conflict",
                )
            if target.id == current.id:
                raise OperationError(f"{environment} already runs {current.label}", "conflict")
            queued = session.scalars(
                select(Deployment.id).where(
                    Deployment.app == app,
                    Deployment.environment == environment,
                    Deployment.override == Override.ROLLBACK.value,
                    Deployment.state.in_(OPEN_STATES),
                )
            ).first()
            if queued is not None:
                raise OperationError(
                    f"a rollback of {app} in {environment} is already under way (deployment #{queued}; "
                    f"conveyor cancel --deployment {queued} to stop it)",
                    "conflict",
                )
            d = queue_rollback(
                session,
                app=app,
                environment=environment,
                to=target,
                from_release=current,
                actor=actor,
                reason=reason,
                now=self.clock(),
            )
            return RollbackResult(d.id, current.label, target.label)

    def unveto(self, app: str, version: str, environment: str, reason: str, actor: str = "cli") -> int:
        """Lift the veto on a release in an environment: it may be started there automatically again."""
        self.config.app(app)
        self.config.check_environment(environment)
        if not reason.strip():
            raise OperationError("a reason is required to lift a veto")
        with self.db.write() as session:
            release = self.find_release(session, app, version)
            veto = _open_veto(session, app, environment, release.id)
            if veto is None:
                raise OperationError(f"{release.label} of {app} is not vetoed in {environment}", "conflict")
            lift_hold(session, veto, self.clock(), actor, reason)
            return veto.id

    def cancel(
        self,
        app: str | None,
        environment: str | None,
        reason: str,
        deployment_id: int | None = None,
        actor: str = "cli",
    ) -> list[int]:
        """Cancel the open deployments of an app (in one environment or all), or one deployment by id.
        Not started ones end at once; running ones stop at their worker's next heartbeat."""
        if not reason.strip():
            raise OperationError("a reason is required to cancel")
        if (app is None) == (deployment_id is None):
            raise OperationError("name an app or a deployment (--deployment ID), not both")
        if app is not None:
            self.config.app(app)
        if environment is not None:
            self.config.check_environment(environment)
        with self.db.write() as session:
            stmt = select(Deployment).where(Deployment.state.in_(OPEN_STATES)).order_by(Deployment.id)
            found = None
            if deployment_id is not None:
                found = session.get(Deployment, deployment_id)
                if found is None:
                    raise OperationError(f"no deployment #{deployment_id}", "not_found")
                stmt = stmt.where(Deployment.id == deployment_id)
            else:
                stmt = stmt.where(Deployment.app == app)
                if environment is not None:
                    stmt = stmt.where(Deployment.environment == environment)
            if self.db.is_postgres:
                stmt = stmt.with_for_update()
            rows = [d for d in session.scalars(stmt) if d.cancel_requested_at is None]
            if not rows:
                if found is not None:
                    state = "being cancelled" if found.cancel_requested_at is not None else found.state
                    raise OperationError(f"nothing to cancel: deployment #{deployment_id} is {state}", "conflict")
                where = f" in {environment}" if environment else ""
                raise OperationError(f"nothing to cancel: {app} has no queued or running deployment{where}", "conflict")
            cancel(session, rows, actor=actor, reason=reason, now=self.clock())
            return [d.id for d in rows]

    def waits_behind(self, deployment_id: int) -> str | None:
        """Why a just-queued deployment will not start at once, when a hold stops it: a deploy of an older
        release into an environment blocked by a failure waits there; ``rollback`` is the way through."""
        with self.db.read() as session:
            d = session.get(Deployment, deployment_id)
            release = session.get(Release, d.release_id) if d else None
            if d is None or release is None or d.environment not in self.config.environments:
                return None
            view = DeploymentView(
                d.id,
                d.app,
                d.environment,
                d.release_id,
                release.label,
                DeploymentState(d.state),
                d.queued_at,
                explicit=d.origin_key is None,
                override=Override(d.override) if d.override else None,
            )
            snap = Snapshot(
                environments=self.config.environments,
                apps={},
                open_deployments=(),
                placements={},
                deployed_releases=frozenset(),
                holds=load_holds(session),
                locks={},
            )
            hold = rules.blocking_hold(view, snap, self.clock())
            if hold is None:
                return None
            text = rules.hold_decision(view, hold).summary
            if hold.kind == HoldKind.BLOCK and hold.environment == d.environment:
                text += (
                    f". It waits until then; to restore service now, run: conveyor rollback {d.app} "
                    f"--env {d.environment} --to {release.label} --reason ..."
                )
            return text


@dataclass(frozen=True)
class RollbackResult:
    deployment_id: int
    rolled_back_from: str
    to: str


def _last_good_before(session: Session, placed: Placement) -> Release | None:
    """The release that most recently passed every check in the place, other than the one that runs."""
    if placed.good_release_id is not None and placed.good_release_id != placed.release_id:
        return session.get(Release, placed.good_release_id)
    release_id = session.scalars(
        select(Deployment.release_id)
        .where(
            Deployment.app == placed.app,
            Deployment.environment == placed.environment,
            Deployment.state == DeploymentState.SUCCEEDED.value,
            Deployment.release_id != placed.release_id,
        )
        .order_by(Deployment.finished_at.desc(), Deployment.id.desc())
        .limit(1)
    ).first()
    return session.get(Release, release_id) if release_id is not None else None


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


def _running(session: Session, app: str) -> dict[str, Release]:
    """Per environment, the release of ``app`` that runs there (its placement's current release)."""
    rows = session.execute(
        select(Placement.environment, Release)
        .join(Release, Release.id == Placement.release_id)
        .where(Placement.app == app)
    ).all()
    return {env: release for env, release in rows}


def _healthy_releases(session: Session, app: str) -> dict[str, Release]:
    """Per environment, the release of ``app`` that runs there and passed its checks: what may be promoted."""
    rows = session.execute(
        select(Placement.environment, Release)
        .join(Release, Release.id == Placement.release_id)
        .where(Placement.app == app, Placement.health == Health.HEALTHY.value)
    ).all()
    return {env: release for env, release in rows}


def _open_veto(session: Session, app: str, environment: str, release_id: int) -> Hold | None:
    return session.scalars(
        select(Hold).where(
            Hold.kind == HoldKind.VETO.value,
            Hold.app == app,
            Hold.environment == environment,
            Hold.release_id == release_id,
            Hold.lifted_at.is_(None),
        )
    ).first()


def _promotion_target(envs: tuple[str, ...], healthy: dict[str, Release]) -> str | None:
    for prev, nxt in itertools.pairwise(envs):
        if prev in healthy and (nxt not in healthy or healthy[nxt].id < healthy[prev].id):
            return nxt
    return None
