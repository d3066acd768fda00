"""A plugin can fail its own step, never the worker, and never hold a lock forever.

Real misbehaving drivers (:mod:`tests.misbehaving`) share a conflict group with a well-behaved app, so
the well-behaved app can only deploy once the broken one's deployment let go of the group's lock:

- a driver that calls ``sys.exit()`` fails its step at once, with one line in the step's log and the
  traceback in the worker's log; the worker goes on and becomes idle;
- a driver that hangs and ignores being told to stop is failed at its ``step_timeout``, abandoned after
  the stop grace, and its late "deployed after all" is refused by the fencing.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from sqlalchemy import select

from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.step_logs import read_step_log
from conveyor.store.tables import Event, Lock, Step
from conveyor.web.metrics import registry_for
from tests.integration.harness import (
    deployments,
    load,
    make_app_repo,
    run_until_idle,
    wait_for,
    write_config,
)
from tests.misbehaving import HangingDriver, register_misbehaving_plugins

CONFIG = """\
environments: [integration, production]
teams: {{shop: {{}}}}
groups: {{checkout: {{}}}}
defaults:
  deploy: {{driver: fake, duration: 0.05, record: {record}}}
apps:
  broken: {{repo: ./repos/broken, team: shop, groups: [checkout], deploy: {broken}}}
  cart: {{repo: ./repos/cart, team: shop, groups: [checkout]}}
"""


def project(tmp_path: Path, broken: str) -> Path:
    for app in ("broken", "cart"):
        make_app_repo(tmp_path / "repos" / app)
    return write_config(tmp_path, CONFIG.format(record=tmp_path / "deploys.jsonl", broken=broken))


def deploy_step(db: Database, app: str) -> Step:
    with db.read() as session:
        (d, _), *_ = deployments(db, app)
        return session.scalars(select(Step).where(Step.deployment_id == d.id, Step.kind == "deploy")).one()


@pytest.mark.timeout(90)
def test_a_driver_calling_sys_exit_fails_its_step_not_the_worker(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    register_misbehaving_plugins(monkeypatch)
    config = load(project(tmp_path, "{driver: exiting}"))
    db = Database(db_url)
    caplog.set_level(logging.INFO)
    try:
        ops = Operations(config, db)
        ops.create_release("broken")
        ops.create_release("cart")
        run_until_idle(config, db_url, timeout=60)  # it becomes idle: the step left the running set

        step = deploy_step(db, "broken")
        assert (step.state, step.outcome) == ("failed", "deploy deploy crashed: SystemExit: 3")
        with db.read() as session:
            log = read_step_log(session, step.id)
            held = session.scalars(select(Lock.name)).all()
        assert "deploy deploy crashed: SystemExit: 3 (traceback in the worker's log)" in log
        assert "Traceback" not in log
        assert [d.state for d, _ in deployments(db, "broken")] == ["failed"]
        assert [d.state for d, _ in deployments(db, "cart")] == ["succeeded", "succeeded"]
        assert held == []
        crash = [r for r in caplog.records if r.levelno == logging.ERROR and "crashed" in r.getMessage()]
        assert len(crash) == 1 and crash[0].exc_info is not None  # the traceback, in the process log
    finally:
        db.dispose()


@pytest.mark.timeout(90)
def test_a_hanging_driver_times_out_frees_its_locks_and_its_late_result_is_refused(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    register_misbehaving_plugins(monkeypatch)
    config = load(project(tmp_path, "{driver: hanging, seconds: 6, step_timeout: 1s}"))
    db = Database(db_url)
    caplog.set_level(logging.INFO, logger="conveyor.engine.conductor")
    conductor_db = Database(db_url)
    conductor = Conductor(config, conductor_db, concurrency=4, poll_interval=0.05, grace_seconds=2, stop_grace=1)
    stop = threading.Event()
    thread = threading.Thread(target=conductor.run, args=(stop,), daemon=True)
    try:
        ops = Operations(config, db)
        ops.create_release("broken")
        thread.start()
        wait_for(lambda: any(d.state == "deploying" for d, _ in deployments(db, "broken")), 20, "the hang")
        ops.create_release("cart")  # waits for the checkout lock the hanging deploy holds

        wait_for(lambda: [d.state for d, _ in deployments(db, "cart")] == ["succeeded", "succeeded"], 30, "cart")
        assert not HangingDriver.returned.is_set(), "the lock was freed while the plugin still ran"
        assert conductor.abandoned == 1
        step = deploy_step(db, "broken")
        outcome = "timed out after 1s (step_timeout); abandoned after ignoring the stop for 1s"
        assert (step.state, step.outcome) == ("failed", outcome)
        assert step.result == {"timed_out": True, "abandoned": True}

        # the plugin returns "deployed after all": the fencing refuses it, nothing changes
        wait_for(HangingDriver.returned.is_set, 15, "the hanging driver to return")
        wait_for(lambda: any("late result refused" in r.getMessage() for r in caplog.records), 10, "the refusal")
        assert conductor.abandoned == 0
        step = deploy_step(db, "broken")
        assert (step.state, step.outcome) == ("failed", outcome)
        assert [d.state for d, _ in deployments(db, "broken")] == ["failed"]
        with db.read() as session:
            timed_out = session.scalars(select(Event).where(Event.kind == "step.timed_out")).all()
            log = read_step_log(session, step.id)
        assert [(e.app, e.payload["step_id"]) for e in timed_out] == [("broken", step.id)]
        metrics = generate_latest(registry_for(db, config)).decode()
        assert "conveyor_step_timeouts_total 1.0" in metrics.splitlines()
        assert "timed out after 1s (step_timeout); stopping" in log
        abandoned = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(abandoned) == 1 and "ignored being told to stop for 1s; abandoning its thread" in abandoned[0]
    finally:
        stop.set()
        thread.join(30)
        conductor_db.dispose()
        db.dispose()
