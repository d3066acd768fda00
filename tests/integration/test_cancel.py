"""Cancel a running deployment from another process (SQLite and PostgreSQL).

Two apps share the conflict group ``router``. ``slow`` deploys with a ``sleep 30`` command; ``fast``
queued after it waits for the group lock. ``conveyor cancel slow`` runs as a separate process: the
worker holding the step sees the request at its next heartbeat (a third of the lease: 1 s here), stops
the command, the step and the deployment end ``cancelled``, the lock is freed only then, and ``fast``
starts. The sleep never overlaps ``fast``'s deploy.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Decision, Deployment, Event, Lock, Step
from tests.integration.harness import (
    ConductorThread,
    attempts,
    load,
    lock_intervals,
    make_app_repo,
    overlaps,
    run_cli,
    wait_for,
    write_config,
)

CONFIG = """\
environments: [integration]
teams: {publishing: {notify: []}}
groups: {router: {description: shared router}}
apps:
  slow:
    repo: ./repos/shared
    team: publishing
    groups: [router]
    deploy: {driver: command, argv: [sleep, "30"], timeout: 60}
  fast:
    repo: ./repos/shared
    team: publishing
    groups: [router]
    deploy: {driver: command, argv: ["true"], timeout: 60}
"""


def _state(db: Database, app: str) -> str | None:
    with db.read() as s:
        return s.scalars(select(Deployment.state).where(Deployment.app == app).order_by(Deployment.id.desc())).first()


def _step_running(db: Database, app: str) -> bool:
    with db.read() as s:
        return (
            s.scalar(
                select(Step.id)
                .join(Deployment, Deployment.id == Step.deployment_id)
                .where(Deployment.app == app, Step.state == "running")
            )
            is not None
        )


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cancel_a_running_deploy_from_another_process(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "shared")
    path = write_config(tmp_path, CONFIG, database_url=db_url)
    config = load(path)
    db = Database(db_url)
    worker = ConductorThread(config, db_url, lease_seconds=3.0, exit_when_idle=True)
    try:
        ops = Operations(config, db)
        ops.create_release("slow")
        ops.create_release("fast")
        worker.start()
        wait_for(lambda: _step_running(db, "slow"), 30, "slow's deploy to run")
        assert _state(db, "fast") == "waiting"

        started = time.monotonic()
        done = run_cli("cancel", "slow", "--reason", "wrong version", "-c", str(path), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: _state(db, "slow") == "cancelled", 5, "slow to end cancelled")
        took = time.monotonic() - started
        assert took < 5, took
        wait_for(lambda: _state(db, "fast") == "succeeded", 30, "fast to start and succeed")
        worker.join(30)

        with db.read() as s:
            assert not list(s.scalars(select(Lock)))
            step = s.scalars(
                select(Step).join(Deployment, Deployment.id == Step.deployment_id).where(Deployment.app == "slow")
            ).one()
            assert step.state == "cancelled"
            events = {e.kind: e for e in s.scalars(select(Event).where(Event.app == "slow"))}
            decision = s.scalars(select(Decision).where(Decision.rule == "CancelledByOperator")).one()
        assert (
            events["cancel.requested"].actor.startswith("cli") and "wrong version" in events["cancel.requested"].message
        )
        assert "deployment.cancelled" in events and "wrong version" in decision.summary
        slow_attempt = next(a for a in attempts(db) if a.app == "slow")
        assert slow_attempt.finished_at is not None
        assert (slow_attempt.finished_at - slow_attempt.started_at).total_seconds() < 10  # the sleep was stopped
        by_deployment, by_attempt = lock_intervals(config, db)
        assert overlaps(by_deployment) == [] and overlaps(by_attempt) == []

        again = run_cli("cancel", "slow", "--reason", "again", "-c", str(path), cwd=tmp_path)
        assert again.returncode == 1
        assert again.stderr.strip().splitlines() == [
            "error: nothing to cancel: slow has no queued or running deployment"
        ]
    finally:
        if worker.alive:
            worker.stop.set()
        db.dispose()
