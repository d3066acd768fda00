"""Deploys whose driver is a coroutine run as tasks on the conductor's one step loop, with no thread per
step, and are held to the same rules as threads: a crash fails the step, a hang is timed out and
abandoned (its task cancelled), a deploy that blocks the loop is given up and the next deploys get a new
loop. The ``fake`` driver is such a driver; ``blocking: true`` puts it back on a thread of its own."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conveyor.config.resolved import Config
from conveyor.engine import step_loop
from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.step_logs import read_step_log
from conveyor.store.tables import Lock, Step
from tests.integration.harness import deployments, load, make_app_repo, wait_for, write_config
from tests.misbehaving import BlockingAsyncDriver, HangingAsyncDriver, register_misbehaving_plugins


def _project(tmp_path: Path, apps: dict[str, str], *, group: bool = False) -> Path:
    lines = [
        "environments: [integration, production]",
        "teams: {shop: {}}",
        "groups: {checkout: {}}",
        f"defaults: {{deploy: {{driver: fake, duration: 0.3, record: {tmp_path / 'deploys.jsonl'}}}}}",
        "apps:",
    ]
    for name, deploy in apps.items():
        make_app_repo(tmp_path / "repos" / name)
        groups = ", groups: [checkout]" if group else ""
        extra = f", deploy: {deploy}" if deploy else ""
        lines.append(f"  {name}: {{repo: ./repos/{name}, team: shop{groups}{extra}}}")
    return write_config(tmp_path, "\n".join(lines) + "\n")


@contextmanager
def _conductor(config: Config, db_url: str, *, until_idle: bool = False, **options: Any) -> Iterator[Conductor]:
    """A conductor on its own connection: run until idle when the block ends (``until_idle``), or in the
    background while the block runs and then stopped."""
    conductor = Conductor(config, Database(db_url), poll_interval=0.02, grace_seconds=2, **options)
    stop = threading.Event()
    thread = threading.Thread(target=conductor.run, args=(stop,), daemon=True)
    try:
        if not until_idle:
            thread.start()
        yield conductor
        if until_idle:
            conductor.run(stop, exit_when_idle=True)
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(30)
        conductor.db.dispose()


def _step(db: Database, app: str) -> Step:
    with db.read() as session:
        (d, _), *_ = deployments(db, app)
        return session.scalars(select(Step).where(Step.deployment_id == d.id)).one()


@pytest.mark.timeout(120)
def test_a_hundred_coroutine_deploys_run_at_once_without_a_thread_each(tmp_path: Path, db: Database) -> None:
    apps = {f"app{i:03d}": "" for i in range(100)}
    apps["blocking"] = "{driver: fake, duration: 0.3, blocking: true}"
    config = load(_project(tmp_path, apps))
    with _conductor(config, db.url, until_idle=True) as conductor:
        ops = Operations(config, db)
        for name in apps:
            ops.create_release(name)

    runs = [json.loads(line) for line in (tmp_path / "deploys.jsonl").read_text().splitlines()]
    assert len(runs) == 202 and {r["outcome"] for r in runs} == {"succeeded"}
    integration = [r for r in runs if r["environment"] == "integration"]
    overlap = min(r["end"] for r in integration) - max(r["start"] for r in integration)
    assert overlap > 0, "the integration deploys did not all run at once"
    assert conductor._threads.started == 1  # the one blocking deploy's; the coroutines had none
    assert all(d.state == "succeeded" for name in apps for d, _ in deployments(db, name))
    step = _step(db, "app007")
    with db.read() as session:
        log = read_step_log(session, step.id)
    assert "fake deploy of app007" in log and "fake deployed" in log


@pytest.mark.timeout(90)
def test_a_coroutine_calling_sys_exit_fails_its_step_not_the_worker(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    register_misbehaving_plugins(monkeypatch)
    config = load(_project(tmp_path, {"broken": "{driver: exiting_async}", "cart": ""}, group=True))
    caplog.set_level(logging.INFO)
    with _conductor(config, db.url, until_idle=True):
        Operations(config, db).create_release("broken")
        Operations(config, db).create_release("cart")

    step = _step(db, "broken")
    assert (step.state, step.outcome) == ("failed", "deploy deploy crashed: SystemExit: 4")
    assert [d.state for d, _ in deployments(db, "cart")] == ["succeeded", "succeeded"]
    with db.read() as session:
        assert session.scalars(select(Lock.name)).all() == []
    crash = [r for r in caplog.records if r.levelno == logging.ERROR and "crashed" in r.getMessage()]
    assert len(crash) == 1 and crash[0].exc_info is not None


@pytest.mark.timeout(90)
def test_a_hanging_coroutine_times_out_frees_its_locks_and_its_task_is_cancelled(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    register_misbehaving_plugins(monkeypatch)
    apps = {"broken": "{driver: hanging_async, seconds: 60, step_timeout: 1s}", "cart": ""}
    config = load(_project(tmp_path, apps, group=True))
    caplog.set_level(logging.INFO, logger="conveyor.engine.conductor")
    with _conductor(config, db.url, concurrency=4, stop_grace=1) as conductor:
        ops = Operations(config, db)
        ops.create_release("broken")
        wait_for(lambda: any(d.state == "deploying" for d, _ in deployments(db, "broken")), 20, "the hang")
        ops.create_release("cart")  # waits for the checkout lock the hanging deploy holds

        wait_for(lambda: [d.state for d, _ in deployments(db, "cart")] == ["succeeded", "succeeded"], 30, "cart")
        step = _step(db, "broken")
        outcome = "timed out after 1s (step_timeout); abandoned after ignoring the stop for 1s"
        assert (step.state, step.outcome) == ("failed", outcome)
        assert step.result == {"timed_out": True, "abandoned": True}
        wait_for(HangingAsyncDriver.cancelled.is_set, 10, "the abandoned task to be cancelled")
        wait_for(lambda: conductor.abandoned == 0, 10, "the cancelled task to end")
        abandoned = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(abandoned) == 1 and "abandoning its task, cancelling it" in abandoned[0]


@pytest.mark.timeout(90)
def test_a_coroutine_blocking_the_loop_is_left_behind_and_the_next_deploys_get_a_new_loop(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    register_misbehaving_plugins(monkeypatch)
    monkeypatch.setattr(step_loop, "STALL_SECONDS", 1.0)
    apps = {"broken": "{driver: blocking_async, seconds: 8, step_timeout: 1s}", "cart": ""}
    config = load(_project(tmp_path, apps))
    caplog.set_level(logging.INFO)
    with _conductor(config, db.url, concurrency=4, stop_grace=1) as conductor:
        ops = Operations(config, db)
        ops.create_release("broken")
        wait_for(lambda: any(d.state == "deploying" for d, _ in deployments(db, "broken")), 20, "the block")
        wait_for(lambda: _step(db, "broken").state == "failed", 20, "the blocked step's timeout")
        ops.create_release("cart")  # the loop is still blocked: cart's deploys run on a new one

        wait_for(lambda: [d.state for d, _ in deployments(db, "cart")] == ["succeeded", "succeeded"], 30, "cart")
        assert not BlockingAsyncDriver.returned.is_set(), "cart waited for the blocked loop"
        assert conductor._loop.given_up == 1
        assert any("has not answered" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
