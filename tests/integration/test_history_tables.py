"""Tables filled from the history on upgrade, on SQLite and PostgreSQL: ``placements`` (revision 0005:
what runs in each (app, environment), its health and last good release; it replaced 0003's
``latest_successes``), ``step_durations`` (0003: finished steps counted per histogram bucket) and
``deployment_durations`` (0016: the same for deployments that ended), so neither a planner pass nor a
metrics scrape reads the whole history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import column, insert, select, table, update

from conveyor.store.database import Database
from conveyor.store.durations import BUCKETS, DEPLOYMENT_BUCKETS, bucket_of, count_ended, count_finished
from conveyor.store.migrate import _alembic_config, current_revision, head_revision, upgrade
from conveyor.store.tables import CiResult, Deployment, DeploymentDuration, Placement, StepDuration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
# the steps table as revision 0002 left it: rows written before an upgrade have none of the later columns
OLD_STEPS = table(
    "steps",
    *(column(name) for name in ("deployment_id", "kind", "name", "state", "attempt", "due_at", "started_at")),
    column("finished_at"),
    column("outcome"),
    column("log"),
    column("measurements"),
    column("result"),
)


# the releases table as revision 0002 left it (later revisions add columns the model writes)
OLD_RELEASES = table(
    "releases", *(column(name) for name in ("id", "app", "sha", "label", "ref", "commits", "created_at", "created_by"))
)


def _releases(db: Database, app: str, count: int) -> list[int]:
    with db.write() as s:
        return [
            int(
                s.execute(
                    insert(OLD_RELEASES)
                    .values(
                        app=app,
                        sha=f"{i:040x}",
                        label=f"v{i}",
                        ref="main",
                        commits="[]",
                        created_at=T0.replace(tzinfo=None),
                        created_by="t",
                    )
                    .returning(OLD_RELEASES.c.id)
                ).scalar_one()
            )
            for i in range(count)
        ]


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


def _placements(db: Database) -> dict[tuple[str, str], tuple[int, int, str, int | None]]:
    with db.read() as s:
        return {
            (p.app, p.environment): (p.release_id, p.deployment_id, p.health, p.good_release_id)
            for p in s.scalars(select(Placement))
        }


def test_upgrade_fills_placements_from_the_history(db: Database) -> None:
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    old, new, newest = _releases(db, "web", 3)
    _deployment(db, old, "web", "integration", "succeeded", 1)
    _deployment(db, new, "web", "integration", "succeeded", 2)
    put_back = _deployment(db, old, "web", "integration", "succeeded", 4)  # an older release put back by hand
    staging = _deployment(db, old, "web", "staging", "succeeded", 6)
    failing = _deployment(db, newest, "web", "staging", "failed", 7)  # deployed, then its checks failed
    broken = _deployment(db, newest, "web", "production", "failed", 8)  # its deploy step failed: never ran
    for did, minutes in ((put_back, 4), (staging, 6), (failing, 7)):
        _step(db, did, "deploy", "succeeded", 1.0, minutes)
    _step(db, broken, "deploy", "failed", 1.0, 8)
    upgrade(db)
    assert current_revision(db) == head_revision()
    assert _placements(db) == {
        ("web", "integration"): (old, put_back, "healthy", old),  # what runs is the one put back
        ("web", "staging"): (newest, failing, "failing", old),
    }


def _step(db: Database, deployment_id: int, kind: str, state: str, seconds: float | None, minutes: int = 0) -> None:
    start = T0 + timedelta(minutes=minutes)
    with db.write() as s:
        s.execute(
            insert(OLD_STEPS).values(
                deployment_id=deployment_id,
                kind=kind,
                name=kind,
                state=state,
                attempt=0,
                due_at=start.replace(tzinfo=None),
                started_at=None if seconds is None else start.replace(tzinfo=None),
                finished_at=None if seconds is None else (start + timedelta(seconds=seconds)).replace(tzinfo=None),
                outcome="",
                log="",
                measurements="[]",
                result="{}",
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


def _deployment_durations(db: Database) -> dict[tuple[str, str, int], tuple[int, float]]:
    with db.read() as s:
        return {
            (r.environment, r.state, r.bucket): (r.deployments, round(r.seconds, 3))
            for r in s.scalars(select(DeploymentDuration))
        }


def test_upgrade_counts_ended_deployments_per_bucket(db: Database) -> None:
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0015")
    (rid,) = _releases(db, "web", 1)
    ran = {
        _deployment(db, rid, "web", "integration", "succeeded"): 3.0,
        _deployment(db, rid, "web", "staging", "failed"): 45.0,
        _deployment(db, rid, "web", "production", "succeeded"): 7200.0,  # past the last bound: +Inf
        _deployment(db, rid, "web", "staging", "deploying"): None,  # not ended
    }
    _deployment(db, rid, "web", "production", "superseded")  # never started: not a duration
    with db.write() as s:
        for did, seconds in ran.items():
            finished = T0 + timedelta(seconds=seconds) if seconds is not None else None
            s.execute(update(Deployment).where(Deployment.id == did).values(started_at=T0, finished_at=finished))
    upgrade(db)
    assert _deployment_durations(db) == {
        ("integration", "succeeded", bucket_of(3.0, DEPLOYMENT_BUCKETS)): (1, 3.0),
        ("staging", "failed", bucket_of(45.0, DEPLOYMENT_BUCKETS)): (1, 45.0),
        ("production", "succeeded", len(DEPLOYMENT_BUCKETS)): (1, 7200.0),
    }


def test_ended_deployments_are_added_to_their_buckets(db: Database) -> None:
    with db.write() as s:
        count_ended(s, [("staging", "succeeded", T0, T0 + timedelta(seconds=2)), ("staging", "cancelled", None, T0)])
    with db.write() as s:
        count_ended(s, [("staging", "succeeded", T0, T0 + timedelta(seconds=4))])
    assert _deployment_durations(db) == {("staging", "succeeded", bucket_of(2.0, DEPLOYMENT_BUCKETS)): (2, 6.0)}


def test_upgrade_dates_stored_ci_results_by_their_reported_time(db: Database) -> None:
    """Revision 0018: retention goes by when a result was received; results kept before it take the time
    GitHub gave them, which is what retention went by until then."""
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0017")
    results = table(
        "ci_results",
        column("app"),
        column("sha"),
        column("name"),
        column("state"),
        column("url"),
        column("source"),
        column("reported_at"),
    )
    with db.engine.begin() as conn:
        conn.execute(
            insert(results).values(
                app="web", sha="a" * 40, name="test", state="success", url=None, source="status", reported_at=T0
            )
        )
    upgrade(db)
    with db.read() as s:
        (row,) = s.scalars(select(CiResult))
    assert (row.reported_at, row.received_at) == (T0, T0)
