"""The bake tier under a fixed clock (SQLite and PostgreSQL): production bakes for 30 minutes after
its checks pass, the checks run again every 10 minutes meanwhile, ``why`` says how long is left, and only
when the time is over does the deployment succeed. The clock only moves while no step runs, so no lease
expires because of it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conveyor import views
from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Deployment, Event, Step
from tests.integration.harness import load, make_app_repo, wait_for, write_config

CONFIG = """\
environments: [integration, staging, production]
teams: {publishing: {notify: []}}
defaults:
  deploy: {driver: fake, duration: 0}
  checks: [{name: smoke, type: fake, count: 1}]
apps:
  web:
    repo: ./repos/web
    team: publishing
    tier: bake
    environments:
      production: {bake: 30m, bake_interval: 10m}
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, minutes: float) -> None:
        with self._lock:
            self.now += timedelta(minutes=minutes)


def _round_queued(db: Database) -> bool:
    with db.read() as s:
        return (
            s.scalar(
                select(Step.id)
                .join(Deployment, Deployment.id == Step.deployment_id)
                .where(Deployment.environment == "production", Step.kind == "check", Step.state == "queued")
            )
            is not None
        )


def _production(db: Database) -> tuple[str | None, int]:
    with db.read() as s:
        state = s.scalars(select(Deployment.state).where(Deployment.environment == "production")).first()
        checks = s.scalar(
            select(func.count())
            .select_from(Step)
            .join(Deployment, Deployment.id == Step.deployment_id)
            .where(Deployment.environment == "production", Step.kind == "check", Step.state == "succeeded")
        )
        return state, int(checks or 0)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bake_tier_with_a_fixed_clock(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "web")
    config = load(write_config(tmp_path, CONFIG))
    clock = Clock()
    db = Database(db_url)
    stop = threading.Event()
    conductor = Conductor(config, Database(db_url), poll_interval=0.05, clock=clock)
    thread = threading.Thread(target=conductor.run, args=(stop,), daemon=True)
    try:
        Operations(config, db, clock=clock).create_release("web")
        thread.start()
        wait_for(lambda: _production(db) == ("baking", 1), 30, "production to bake after its first checks")
        with db.read() as s:
            staging = s.scalars(select(Deployment.state).where(Deployment.environment == "staging")).one()
        assert staging == "succeeded"  # only production bakes

        clock.advance(10)  # the second round is due
        wait_for(lambda: _production(db) == ("baking", 2), 30, "the second round of checks")
        wait_for(lambda: _round_queued(db), 30, "the third round to be queued")
        clock.advance(8)
        why = views.why(db, config, "web", "production", now=clock())["environments"]["production"]
        assert why["explanation"].endswith("is baking: 12m of 30m left"), why
        assert why["current"] and why["health"] == "healthy" and why["last_good"] is None

        clock.advance(2)  # 20 minutes in: the third round, and none after (under one interval left)
        wait_for(lambda: _production(db) == ("baking", 3), 30, "the third round of checks")
        clock.advance(9)
        assert _production(db) == ("baking", 3)
        clock.advance(1)  # 30 minutes: the bake is over
        wait_for(lambda: _production(db)[0] == "succeeded", 30, "production to succeed after the bake")
        assert _production(db) == ("succeeded", 3)
        with db.read() as s:
            kinds = list(s.scalars(select(Event.kind).where(Event.environment == "production").order_by(Event.id)))
        assert kinds.count("deployment.baking") == 1
        assert kinds.index("deployment.baking") < kinds.index("deployment.succeeded")
        (status,) = views.status(db, config, "web")
        assert status.environments["production"].last_good == status.environments["production"].current
    finally:
        stop.set()
        thread.join(30)
        conductor.db.dispose()
        db.dispose()
