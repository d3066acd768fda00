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
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.domain.audit import (
    BLOCK,
    CANCEL,
    DEPLOY,
    FORCE,
    FREEZE,
    PROMOTE,
    RELEASE,
    ROLLBACK,
    STOP,
    UNBLOCK,
    UNFREEZE,
    UNVETO,
    OperatorAction,
)
from conveyor.domain.holds import FORCEABLE, Attempt, Obstacle, stopping, unblock_command
from conveyor.domain.model import DeploymentState, Health, HoldKind, Override
from conveyor.domain.moments import parse_moment
from conveyor.engine.controls import cancel, queue_rollback
from conveyor.engine.deployments import create_deployment
from conveyor.errors import OperationError
from conveyor.github.candidates import release_authors
from conveyor.repos import Commit, GitError, RepoMirror, UnknownRef, mirror_path_for
from conveyor.store.database import Database
from conveyor.store.events import lift_hold, raise_hold, record_event
from conveyor.store.snapshot import hold_policy, load_holds
from conveyor.store.tables import Deployment, Hold, Placement, Release
from conveyor.views import active_holds

OPEN_STATES = [s.value for s in DeploymentState if not s.terminal]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseResult:
    release_id: int
    label: str
    sha: str
    created: bool
    commits: int


@dataclass(frozen=True)
class GitHubLinks:
    """What GitHub adds to a release beyond git (from the candidates that led to it): the login and the
    pull requests of each commit by SHA, the repository's web address and the push's compare page."""

    repo_url: str | None = None  # https://github.com/owner/name
    logins: Mapping[str, str] = field(default_factory=dict)
    pull_requests: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    compare_url: str | None = None  # the push's, used when there is no previous release to compare with

    def commit(self, c: Commit) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if c.sha in self.logins:
            extra["login"] = self.logins[c.sha]
        if self.pull_requests.get(c.sha):
            extra["pull_requests"] = list(self.pull_requests[c.sha])
        return {**_commit_json(c), **extra}

    def release_pull_requests(self, commits: list[Commit]) -> list[dict[str, Any]]:
        numbers = dict.fromkeys(n for c in commits for n in self.pull_requests.get(c.sha, ()))
        return [{"number": n, "url": f"{self.repo_url}/pull/{n}" if self.repo_url else None} for n in numbers]

    def compare(self, previous: Release | None, sha: str) -> str | None:
        if previous is not None and self.repo_url:
            return f"{self.repo_url}/compare/{previous.sha}...{sha}"
        return self.compare_url


class Operations:
    def __init__(self, config: Config, db: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self.config, self.db, self.clock = config, db, clock

    def mirror(self, app: str) -> RepoMirror:
        return RepoMirror(mirror_path_for(self.config.state_dir, app), self.config.app(app).repo)

    # -- releases -----------------------------------------------------------------------------------

    def create_release(
        self,
        app: str,
        ref: str | None = None,
        actor: str = "cli",
        reason: str | None = None,
        links: GitHubLinks | None = None,
    ) -> ReleaseResult:
        """Resolve ``ref`` (default: the app's branch) and record it as a release heading for the first
        environment. Releasing the same commit twice returns the existing release, also when two requests
        race: the second finds the first's row, or meets the unique (app, sha) constraint and reads it. An
        existing release records nothing."""
        cfg = self.config.app(app)
        reason = reason_for(RELEASE, reason)
        mirror = self.mirror(app)
        try:
            mirror.update()
            sha = mirror.resolve(ref or cfg.branch)
            with self.db.read() as session:
                existing = _release_by_sha(session, app, sha)
                if existing is not None:
                    return _existing(existing)
                previous = session.scalars(
                    select(Release).where(Release.app == app).order_by(Release.id.desc()).limit(1)
                ).first()
            commits = _commits_since(mirror, app, previous, sha)
            label = mirror.describe(sha)
        except GitError as exc:
            log.error("cannot release %s from %s: %s", app, mirror, exc)
            raise
        try:
            return self._record_release(app, ref or cfg.branch, sha, label, previous, commits, actor, reason, links)
        except IntegrityError:
            with self.db.read() as session:
                raced = _release_by_sha(session, app, sha)
            if raced is None:
                raise
            return _existing(raced)

    def _record_release(
        self,
        app: str,
        ref: str,
        sha: str,
        label: str,
        previous: Release | None,
        commits: list[Commit],
        actor: str,
        reason: str | None,
        links: GitHubLinks | None = None,
    ) -> ReleaseResult:
        links = links or GitHubLinks()
        with self.db.write() as session:
            again = _release_by_sha(session, app, sha)
            if again is not None:
                return _existing(again)
            now = self.clock()
            release = Release(
                app=app,
                sha=sha,
                label=label,
                ref=ref,
                previous_release_id=previous.id if previous else None,
                commits=[links.commit(c) for c in commits],
                created_at=now,
                created_by=actor,
                pull_requests=links.release_pull_requests(commits),
                compare_url=links.compare(previous, sha),
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
                payload={
                    "sha": sha,
                    "label": label,
                    "ref": release.ref,
                    "commits": len(commits),
                    "authors": release_authors(release.commits),
                    "pull_requests": release.pull_requests,
                    "compare_url": release.compare_url,
                },
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

    def deploy(
        self,
        app: str,
        version: str,
        environment: str,
        actor: str = "cli",
        *,
        force: bool = False,
        reason: str | None = None,
    ) -> int:
        """Queue an explicit deployment of an existing release to an environment.

        A stop, freeze or closed window there refuses it unless ``force`` (break-glass, with a reason)."""
        self.config.app(app)
        self.config.check_environment(environment)
        reason = reason_for(DEPLOY, reason)
        with self.db.write() as session:
            release = self.find_release(session, app, version)
            attempt = Attempt(app, environment, release.id, explicit=True)
            # without --force only what --force could pass refuses a deploy here (a block makes it wait);
            # with --force, anything it cannot pass refuses it, rather than queue a start that never comes
            passed = self.admit(session, attempt, force=force, reason=reason or "", kinds=None if force else FORCEABLE)
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
                override=Override.FORCE if force else None,
                action=DEPLOY,
                reason=reason,
            )
            if force:
                self.record_override(session, d, passed, actor, reason or "", now)
            return d.id

    def promote(
        self, app: str, to: str | None = None, actor: str = "cli", *, force: bool = False, reason: str | None = None
    ) -> int:
        """Send the newest release that passed the previous environment into ``to`` (default: the first
        environment behind its predecessor). This is how the manual tier reaches the last environment."""
        self.config.app(app)
        reason = reason_for(PROMOTE, reason)
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
                there = session.get(Placement, (app, source))
                runs = session.get(Release, there.release_id) if there is not None else None
                if there is None or runs is None:
                    raise OperationError(f"no release of {app} has passed {source} yet", "conflict")
                raise OperationError(
                    f"nothing to promote from {source}: {runs.label} runs there with health {there.health}, "
                    "and only a release that runs there healthy is promoted (see: conveyor why "
                    f"{app} {source})",
                    "conflict",
                )
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
            attempt = Attempt(app, target, candidate.id, explicit=True)
            passed = self.admit(session, attempt, force=force, reason=reason or "")
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
                override=Override.FORCE if force else None,
                action=PROMOTE,
                reason=reason,
            )
            if force:
                self.record_override(session, d, passed, actor, reason or "", now)
            return d.id

    # -- holds -----------------------------------------------------------------------------------------

    def stopping(self, session: Session, attempt: Attempt) -> tuple[Obstacle, ...]:
        """What stops ``attempt`` now: the one scoping function, over the holds in this transaction."""
        return stopping(attempt, load_holds(session), hold_policy(self.config), self.clock())

    def admit(
        self,
        session: Session,
        attempt: Attempt,
        *,
        force: bool = False,
        reason: str = "",
        kinds: frozenset[str] | None = None,
    ) -> tuple[Obstacle, ...]:
        """Refuse ``attempt`` when a hold stops it (only holds of ``kinds``, when given), unless ``force``
        passes every such hold (break-glass: stops, freezes and windows; never a block, a veto or a lock).
        Returns the holds forced past, for :meth:`record_override`. Reusable by any explicit start."""
        if force and not reason.strip():
            raise OperationError("--force needs a --reason (it is recorded and notified)", field="reason")
        found = [o for o in self.stopping(session, attempt) if kinds is None or o.kind in kinds]
        binding = [o for o in found if not (force and o.forceable)]
        if binding:
            first = binding[0]
            if first.forceable:
                hint = "; or break glass with --force --reason TEXT"
            else:
                hint = f" (--force never passes a {first.kind})" if force else ""
            said = first.summary.removeprefix("held: ")  # a block in an earlier environment says "held: ..."
            raise OperationError(f"{attempt.app} is held in {attempt.environment}: {said}{hint}", "conflict")
        return tuple(found)

    def record_override(
        self, session: Session, d: Deployment, passed: tuple[Obstacle, ...], actor: str, reason: str, now: datetime
    ) -> None:
        """The ``hold.overridden`` Event of a forced deployment, naming every hold it passed."""
        what = ", ".join(o.kind + (f" #{o.hold.id}" if o.hold else "") for o in passed) or "nothing held it then"
        record_event(
            session,
            "hold.overridden",
            at=now,
            actor=actor,
            message=f"forced deployment #{d.id} to {d.environment} past {what}: {reason}",
            app=d.app,
            environment=d.environment,
            release_id=d.release_id,
            deployment_id=d.id,
            payload={"override": Override.FORCE.value, "reason": reason, "passed": [o.evidence() for o in passed]},
            action=FORCE,
            reason=reason,
        )

    def holds(self) -> list[dict[str, Any]]:
        """The holds in force now (not lifted, not expired), oldest first, each with its lift command."""
        with self.db.read() as session:
            return active_holds(session, self.clock())

    def block(self, app: str, environment: str | None, reason: str, actor: str = "cli") -> int:
        """Block an app by hand (in ``environment`` and every later one, or everywhere): only ``unblock``
        lifts it, never a newer release."""
        self.config.app(app)
        if environment is not None:
            self.config.check_environment(environment)
        return self._create_hold(HoldKind.BLOCK, app, environment, reason, None, actor, BLOCK)

    def freeze(
        self, app: str | None, environment: str | None, reason: str, until: str | None = None, actor: str = "cli"
    ) -> int:
        """Freeze every app or one, in every environment or one (exactly that scope); ``until`` (ISO 8601
        or relative like 2h) ends it on its own."""
        if app is not None:
            self.config.app(app)
        if environment is not None:
            self.config.check_environment(environment)
        return self._create_hold(HoldKind.FREEZE, app, environment, reason, until, actor, FREEZE)

    def stop(self, environment: str, reason: str, until: str | None = None, actor: str = "cli") -> int:
        """Stop the line: no automatic start in ``environment`` for any app until ``unfreeze``."""
        self.config.check_environment(environment)
        return self._create_hold(HoldKind.STOP, None, environment, reason, until, actor, STOP)

    def stop_for(self, environment: str, origin: str, reason: str, evidence: dict[str, Any], actor: str) -> int | None:
        """Stop the line in ``environment`` on behalf of something outside (an alert): one hold per
        ``origin`` while it is not lifted. None, and nothing recorded, when that hold is already in force,
        or when a person lifted it by hand since the same firing began (``evidence["starts_at"]``): a
        repeated notification of an alert someone chose to go past does not stop the line again."""
        self.config.check_environment(environment)
        now = self.clock()
        try:
            with self.db.write() as session:
                latest = session.scalars(
                    select(Hold).where(Hold.origin == origin).order_by(Hold.id.desc()).limit(1)
                ).first()
                if latest is not None and (
                    latest.lifted_at is None
                    or (latest.lifted_by != actor and latest.evidence.get("starts_at") == evidence.get("starts_at"))
                ):
                    return None
                hold = Hold(
                    kind=HoldKind.STOP.value,
                    app=None,
                    environment=environment,
                    reason=reason,
                    actor=actor,
                    since=now,
                    evidence=evidence,
                    origin=origin,
                )
                raise_hold(
                    session,
                    hold,
                    f"stop of every app in {environment}: {reason}",
                    payload={"until": None, "origin": origin, "evidence": evidence},
                    action=STOP,
                )
                return hold.id
        except IntegrityError:  # another process raised it at the same moment (the open-origin index)
            return None

    def lift_from(self, origin_prefix: str, reason: str, actor: str) -> list[int]:
        """Lift every hold not lifted whose origin starts with ``origin_prefix`` (an alert resolved)."""
        with self.db.write() as session:
            stmt = select(Hold).where(Hold.origin.startswith(origin_prefix, autoescape=True), Hold.lifted_at.is_(None))
            holds = list(session.scalars(stmt.order_by(Hold.id)))
            now = self.clock()
            for hold in holds:
                lift_hold(session, hold, now, actor, reason, action=UNFREEZE)
            return [hold.id for hold in holds]

    def unfreeze(self, hold_id: int, reason: str = "", actor: str = "cli") -> dict[str, Any]:
        """Lift a freeze or a stop by its id (``conveyor holds`` lists them)."""
        with self.db.write() as session:
            hold = session.get(Hold, hold_id)
            if hold is None:
                raise OperationError(f"no hold #{hold_id} (see: conveyor holds)", "not_found")
            if hold.kind == HoldKind.BLOCK.value:
                command = unblock_command(hold.app or "APP", hold.environment)
                raise OperationError(f"hold #{hold_id} is a block, not a freeze: lift it with {command}", "conflict")
            if hold.kind == HoldKind.VETO.value:
                release = session.get(Release, hold.release_id) if hold.release_id is not None else None
                command = (
                    f"conveyor unveto {hold.app} {release.label if release else 'RELEASE'} --env {hold.environment} "
                    "--reason TEXT"
                )
                raise OperationError(f"hold #{hold_id} is a veto, not a freeze: lift it with {command}", "conflict")
            if hold.kind not in (HoldKind.FREEZE.value, HoldKind.STOP.value):
                raise OperationError(f"hold #{hold_id} is a {hold.kind}, not a freeze or a stop", "conflict")
            if hold.lifted_at is not None:
                raise OperationError(
                    f"hold #{hold_id} was already lifted by {hold.lifted_by} at {hold.lifted_at:%Y-%m-%d %H:%M}",
                    "conflict",
                )
            now = self.clock()
            if hold.until is not None and hold.until <= now:
                # it ended on its own; the expiry sweep records that as soon as a conductor runs
                raise OperationError(
                    f"hold #{hold_id} already ended at {hold.until:%Y-%m-%d %H:%M} (its --until)", "conflict"
                )
            lift_hold(session, hold, now, actor, reason.strip() or f"unfrozen by {actor}", action=UNFREEZE)
            return {"id": hold.id, "kind": hold.kind, "app": hold.app, "environment": hold.environment}

    def _create_hold(
        self,
        kind: HoldKind,
        app: str | None,
        environment: str | None,
        reason: str,
        until: str | None,
        actor: str,
        action: OperatorAction,
    ) -> int:
        if not reason.strip():
            raise OperationError(f"a reason is required to {kind.value}", field="reason")
        now = self.clock()
        ends = parse_until(until, now) if until else None
        with self.db.write() as session:
            hold = Hold(
                kind=kind.value,
                app=app,
                environment=environment,
                reason=reason,
                actor=actor,
                since=now,
                until=ends,
                evidence={},
            )
            scope = f"{app or 'every app'} in {environment or 'every environment'}"
            raise_hold(
                session,
                hold,
                f"{kind.value} of {scope}: {reason}",
                payload={"until": ends.isoformat() if ends else None},
                action=action,
            )
            return hold.id

    def unblock(self, app: str, environment: str | None, reason: str, actor: str = "cli") -> int:
        """Lift the block(s) on an app, automatic or by hand; returns how many were lifted."""
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
                blocked = select(Hold.environment).where(
                    Hold.app == app, Hold.kind == HoldKind.BLOCK.value, Hold.lifted_at.is_(None)
                )
                elsewhere = sorted(set(session.scalars(blocked)), key=lambda env: env or "")
                also = ""
                if elsewhere:
                    names = ", ".join(env or "every environment" for env in elsewhere)
                    also = f" (it is blocked in {names}: {unblock_command(app, elsewhere[0])})"
                raise OperationError(f"{app} is not blocked{where}{also}", "conflict")
            now = self.clock()
            for hold in holds:
                lift_hold(session, hold, now, actor, why, action=UNBLOCK)
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
            raise OperationError("a reason is required to roll back", field="reason")
        with self.db.write() as session:
            placed = session.get(Placement, (app, environment))
            if placed is None:
                raise OperationError(f"nothing of {app} runs in {environment}: nothing to roll back", "conflict")
            current = session.get(Release, placed.release_id)
            assert current is not None
            if placed.health == Health.STOPPED.value:
                # Nothing runs: going back is deploying the last good release again, even the one stopped,
                # and what is rolled back from is the release whose failed deploy stopped it.
                from_release = _stopped_by(session, placed) or current
                target = self.find_release(session, app, to) if to else _good(session, placed)
                if target is None:
                    raise OperationError(
                        f"nothing runs in {environment} and no release of {app} passed there: name one with --to",
                        "conflict",
                    )
            else:
                from_release = current
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
                from_release=from_release,
                actor=actor,
                reason=reason,
                now=self.clock(),
                action=ROLLBACK,
            )
            return RollbackResult(d.id, from_release.label, target.label)

    def unveto(self, app: str, version: str, environment: str, reason: str, actor: str = "cli") -> int:
        """Lift the veto on a release in an environment: it may be started there automatically again."""
        self.config.app(app)
        self.config.check_environment(environment)
        if not reason.strip():
            raise OperationError("a reason is required to lift a veto", field="reason")
        with self.db.write() as session:
            release = self.find_release(session, app, version)
            veto = _open_veto(session, app, environment, release.id)
            if veto is None:
                raise OperationError(f"{release.label} of {app} is not vetoed in {environment}", "conflict")
            lift_hold(session, veto, self.clock(), actor, reason, action=UNVETO)
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
            raise OperationError("a reason is required to cancel", field="reason")
        if app is None and deployment_id is None:
            raise OperationError("name an app, or a deployment with --deployment ID")
        if app is not None and deployment_id is not None:
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
            cancel(session, rows, actor=actor, reason=reason, now=self.clock(), action=CANCEL)
            return [d.id for d in rows]

    def waits_behind(self, deployment_id: int) -> str | None:
        """Why a just-queued deployment will not start at once, when a hold stops it: a deploy of an older
        release into an environment blocked by a failure waits there; ``rollback`` is the way through."""
        with self.db.read() as session:
            d = session.get(Deployment, deployment_id)
            release = session.get(Release, d.release_id) if d else None
            if d is None or release is None or d.environment not in self.config.environments:
                return None
            override = Override(d.override) if d.override else None
            attempt = Attempt(d.app, d.environment, d.release_id, explicit=d.origin_key is None, override=override)
            found = self.stopping(session, attempt)
            if not found:
                return None
            first = found[0]
            text = first.summary
            if (
                first.kind == HoldKind.BLOCK.value
                and first.hold is not None
                and first.hold.environment == d.environment
            ):
                text = text.rstrip(".") + "."
                text += (
                    f" It waits until then; to restore service now, run: conveyor rollback {d.app} "
                    f"--env {d.environment} --to {release.label} --reason ..."
                )
            return text


@dataclass(frozen=True)
class RollbackResult:
    deployment_id: int
    rolled_back_from: str
    to: str


def _good(session: Session, placed: Placement) -> Release | None:
    """The place's last good release, whichever it is."""
    return session.get(Release, placed.good_release_id) if placed.good_release_id is not None else None


def _stopped_by(session: Session, placed: Placement) -> Release | None:
    """The release whose failed deploy stopped what ran in a place: the newest failed there."""
    return _newest_release(session, placed, DeploymentState.FAILED)


def _last_good_before(session: Session, placed: Placement) -> Release | None:
    """The release that most recently passed every check in the place, other than the one that runs."""
    if placed.good_release_id is not None and placed.good_release_id != placed.release_id:
        return session.get(Release, placed.good_release_id)
    return _newest_release(session, placed, DeploymentState.SUCCEEDED, Deployment.release_id != placed.release_id)


def _newest_release(session: Session, placed: Placement, state: DeploymentState, *where: Any) -> Release | None:
    """The release of the place's deployment in ``state`` (and ``where``) that ended last."""
    release_id = session.scalars(
        select(Deployment.release_id)
        .where(
            Deployment.app == placed.app,
            Deployment.environment == placed.environment,
            Deployment.state == state.value,
            *where,
        )
        .order_by(Deployment.finished_at.desc(), Deployment.id.desc())
        .limit(1)
    ).first()
    return session.get(Release, release_id) if release_id is not None else None


def parse_until(text: str, now: datetime) -> datetime:
    """When a hold ends (:mod:`conveyor.domain.moments`); a time not after ``now`` is a conflict."""
    try:
        ends = parse_moment(text, now)
    except ValueError as exc:
        raise OperationError(f"--until {exc}", field="until") from None
    if ends <= now:
        raise OperationError(
            f"--until {text!r} is in the past ({ends:%Y-%m-%d %H:%M} UTC is before now)", "conflict", field="until"
        )
    return ends


def reason_for(action: OperatorAction, reason: str | None) -> str | None:
    """The reason as recorded (stripped; None when none was given), or an OperationError when
    ``action`` requires one and none was given."""
    text = (reason or "").strip()
    if action.reason_required and not text:
        raise OperationError(f"a reason is required to {action.name}", field="reason")
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


def _existing(release: Release) -> ReleaseResult:
    return ReleaseResult(release.id, release.label, release.sha, False, len(release.commits))


def _commits_since(mirror: RepoMirror, app: str, previous: Release | None, sha: str) -> list[Commit]:
    """The commits since the previous release; all of ``sha``'s history (up to the usual limit) when the
    previous release is no longer in the repository (history rewritten upstream, then collected)."""
    if previous is None:
        return mirror.commits_between(None, sha)
    try:
        return mirror.commits_between(previous.sha, sha)
    except UnknownRef:
        log.warning(
            "the previous release %s of %s (%s) is no longer in its repository (history rewritten?); "
            "listing the new release's commits without it",
            previous.label,
            app,
            previous.sha[:12],
        )
        return mirror.commits_between(None, sha)


def _release_by_sha(session: Session, app: str, sha: str) -> Release | None:
    return session.scalars(select(Release).where(Release.app == app, Release.sha == sha)).first()


def _running(session: Session, app: str) -> dict[str, Release]:
    """Per environment, the release of ``app`` that runs there (its placement's current release, unless
    it was stopped)."""
    rows = session.execute(
        select(Placement.environment, Release)
        .join(Release, Release.id == Placement.release_id)
        .where(Placement.app == app, Placement.health != Health.STOPPED.value)
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
