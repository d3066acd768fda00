"""A worker that is alive but cannot reach the database stops its steps before their lease runs out.

Past the lease another worker may take the step over; the cut-off worker cannot know, so it must have
stopped (and killed) its own run by then: two runs of one step never overlap. Here the worker's
heartbeats fail (the database is "unreachable" to them alone) while its deploy runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from tests.integration.harness import load, make_app_repo, wait_for, write_config

LEASE = 6.0
CONFIG = """\
environments: [production]
teams: {{platform: {{notify: []}}}}
defaults:
  deploy: {{driver: fake, duration: 30, record: "{record}"}}
  checks: []
apps:
  web: {{repo: ./repos/web, team: platform}}
"""


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_worker_cut_off_from_the_database_stops_its_step_within_the_lease(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    make_app_repo(tmp_path / "repos" / "web")
    record = tmp_path / "deploys.jsonl"
    config = load(write_config(tmp_path, CONFIG.format(record=record)))
    db, conductor_db = Database(db_url), Database(db_url)
    conductor = Conductor(config, conductor_db, concurrency=4, poll_interval=0.05, lease_seconds=LEASE)
    stop = threading.Event()
    thread = threading.Thread(target=conductor.run, args=(stop,), daemon=True)
    caplog.set_level(logging.WARNING, logger="conveyor.engine.conductor")
    try:
        Operations(config, db).create_release("web", actor="test")
        thread.start()
        wait_for(lambda: bool(conductor._running), 30, "the deploy to start")
        conductor.heartbeat_once()  # one heartbeat that reaches the database: the lease is renewed now
        cut_off = time.time()

        def unreachable(*_args: object, **_kwargs: object) -> set[int]:
            raise OperationalError("UPDATE steps ...", {}, Exception("could not connect to server"))

        monkeypatch.setattr(conductor.leases, "heartbeat", unreachable)
        wait_for(lambda: record.exists() and record.read_text().strip() != "", 30, "the deploy to stop")
        (run,) = [json.loads(line) for line in record.read_text().splitlines()]
        assert run["outcome"] == "cancelled"
        assert run["end"] - cut_off < LEASE, "the run outlived the lease another worker could take it over after"
        assert any("no heartbeat reached the database" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        thread.join(timeout=30)
        db.dispose()
        conductor_db.dispose()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_worker_stopping_without_the_database_still_stops_its_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Shutdown hands running steps back, then tells them to stop; a database that is gone by then must not
    stop the second half: the steps still end, and their leases run out for a reaper."""
    make_app_repo(tmp_path / "repos" / "web")
    record = tmp_path / "deploys.jsonl"
    config = load(write_config(tmp_path, CONFIG.format(record=record)))
    db_url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    db, conductor_db = Database(db_url), Database(db_url)
    upgrade(db)
    conductor = Conductor(config, conductor_db, concurrency=4, poll_interval=0.05, grace_seconds=0.5, stop_grace=5)
    stop = threading.Event()
    thread = threading.Thread(target=conductor.run, args=(stop,), daemon=True)
    caplog.set_level(logging.ERROR, logger="conveyor.engine.conductor")
    try:
        Operations(config, db).create_release("web", actor="test")
        thread.start()
        wait_for(lambda: bool(conductor._running), 30, "the deploy to start")

        def unreachable(*_args: object, **_kwargs: object) -> None:
            raise OperationalError("UPDATE steps ...", {}, Exception("could not connect to server"))

        monkeypatch.setattr(conductor.leases, "release", unreachable)
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()
        (run,) = [json.loads(line) for line in record.read_text().splitlines()]
        assert run["outcome"] == "cancelled"
        assert any("could not hand 1 step(s) back" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=30)
        db.dispose()
        conductor_db.dispose()
