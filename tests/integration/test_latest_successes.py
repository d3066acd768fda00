"""Revision 0003 and the tables it adds, on SQLite and PostgreSQL: ``latest_successes`` (the newest
release that succeeded per (app, environment)) and ``step_durations`` (finished steps counted per
histogram bucket), each filled from the history on upgrade and kept up to date afterwards, so neither a
planner pass nor a metrics scrape reads the whole history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import insert, select

from conveyor.domain.decisions import Start, Succeed
from conveyor.engine.orchestrator import Orchestrator
from conveyor.store.database import Database
from conveyor.store.migrate import _alembic_config, current_revision, head_revision, upgrade
from conveyor.store.step_durations import BUCKETS, bucket_of, count_finished
from conveyor.store.tables import Deployment, LatestSuccess, Release, Step, StepDuration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _releases(db: Database, app: str, count: int) -> list[int]:
    with db.write() as s:
        rows = [
            Release(app=app, sha=f"{i:040x}", label=f"v{i}", ref="main", created_at=T0, created_by="t")
            for i in range(count)
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def _deployment(db: Database, release_id: int, app: str, env: str, state: str, minutes: int = 0) -> int:
    at = T0 + timedelta(minutes=minutes)
    with db.write() as s:
        return int(
            s.execute(
                insert(Deployment)
                .values(
                    release_id=release_id,
                    app=app,
                    environment=env,
                    state=state,
                    queued_at=at,
                    updated_at=at,
                    finished_at=at,
                    created_by="t",
                    summary="",
                )
                .returning(Deployment.id)
            ).scalar_one()
        )


def _latest(db: Database) -> dict[tuple[str, str], tuple[int, int]]:
    with db.read() as s:
        return {(c.app, c.environment): (c.release_id, c.deployment_id) for c in s.scalars(select(LatestSuccess))}


def test_upgrade_fills_latest_successes_from_the_history(db: Database) -> None:
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    old, new, newest = _releases(db, "web", 3)
    _deployment(db, old, "web", "integration", "succeeded", 1)
    first = _deployment(db, new, "web", "integration", "succeeded", 2)
    again = _deployment(db, new, "web", "integration", "succeeded", 3)  # the same release redeployed
    _deployment(db, old, "web", "integration", "succeeded", 4)  # an older release put back later
    _deployment(db, newest, "web", "integration", "failed", 5)  # failures never count
    staging = _deployment(db, old, "web", "staging", "succeeded", 6)
    _deployment(db, newest, "web", "production", "deploying", 7)  # nothing live there yet
    upgrade(db)
    assert current_revision(db) == head_revision()
    assert _latest(db) == {("web", "integration"): (new, again), ("web", "staging"): (old, staging)}
    assert first != again


def test_successes_move_the_latest_success_forward_only(db: Database) -> None:
    orch = Orchestrator(db, lambda: T0)
    older, newer = _releases(db, "api", 2)
    live_new = _deployment(db, newer, "api", "staging", "pending")
    late_old = _deployment(db, older, "api", "staging", "pending")
    assert orch.apply(Start(None, deployment_id=live_new, locks=()))
    assert orch.apply(Succeed(None, deployment_id=live_new))
    assert _latest(db) == {("api", "staging"): (newer, live_new)}
    # an older release deployed explicitly and succeeding afterwards does not move it back
    assert orch.apply(Start(None, deployment_id=late_old, locks=()))
    assert orch.apply(Succeed(None, deployment_id=late_old))
    assert _latest(db) == {("api", "staging"): (newer, live_new)}
    # a newer deployment of the same release does move it, to that deployment
    redeploy = _deployment(db, newer, "api", "staging", "pending")
    assert orch.apply_all([Start(None, deployment_id=redeploy, locks=()), Succeed(None, deployment_id=redeploy)]) == [
        True,
        True,
    ]
    assert _latest(db) == {("api", "staging"): (newer, redeploy)}


def _step(db: Database, deployment_id: int, kind: str, state: str, seconds: float | None) -> None:
    with db.write() as s:
        s.execute(
            insert(Step).values(
                deployment_id=deployment_id,
                kind=kind,
                name=kind,
                state=state,
                due_at=T0,
                started_at=None if seconds is None else T0,
                finished_at=None if seconds is None else T0 + timedelta(seconds=seconds),
            )
        )


def _durations(db: Database) -> dict[tuple[str, int], tuple[int, float]]:
    with db.read() as s:
        return {(r.kind, r.bucket): (r.steps, round(r.seconds, 3)) for r in s.scalars(select(StepDuration))}


def test_upgrade_counts_finished_steps_per_bucket(db: Database) -> None:
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    (rid,) = _releases(db, "web", 1)
    did = _deployment(db, rid, "web", "integration", "succeeded")
    _step(db, did, "deploy", "succeeded", 0.1)  # on a bound: that bucket
    _step(db, did, "deploy", "failed", 0.3)
    _step(db, did, "check", "succeeded", 7200)  # past the last bound: +Inf
    _step(db, did, "check", "cancelled", None)  # cancelled before it ran: not a duration
    _step(db, did, "check", "running", 1.0)  # not finished
    upgrade(db)
    assert _durations(db) == {
        ("deploy", bucket_of(0.1)): (1, 0.1),
        ("deploy", bucket_of(0.3)): (1, 0.3),
        ("check", len(BUCKETS)): (1, 7200.0),
    }
    assert bucket_of(0.1) == 0 and bucket_of(0.3) == 1


def test_finished_steps_are_added_to_their_buckets(db: Database) -> None:
    with db.write() as s:
        count_finished(s, [("deploy", T0, T0 + timedelta(seconds=2)), ("deploy", None, T0)])
    with db.write() as s:
        count_finished(s, [("deploy", T0, T0 + timedelta(seconds=3)), ("check", T0, T0 + timedelta(seconds=0.05))])
    assert _durations(db) == {("deploy", bucket_of(2)): (2, 5.0), ("check", 0): (1, 0.05)}
