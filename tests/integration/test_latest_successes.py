"""Revision 0003 and the ``latest_successes`` table it adds, on SQLite and PostgreSQL: the newest
release that succeeded per (app, environment), filled from the history on upgrade and kept by the
orchestrator afterwards, so a planner pass never groups the whole history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import insert, select

from conveyor.domain.decisions import Start, Succeed
from conveyor.engine.orchestrator import Orchestrator
from conveyor.store.database import Database
from conveyor.store.migrate import _alembic_config, current_revision, head_revision, upgrade
from conveyor.store.tables import Deployment, LatestSuccess, Release

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
