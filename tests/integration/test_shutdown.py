"""SIGTERM: a worker stops claiming, lets running steps finish within its grace period, and hands back
what is still running so the next worker takes it at once (no wait for the lease to expire)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.store.database import Database
from conveyor.store.tables import Step, StepAttempt
from tests.gitrepos import make_repo

CONFIG = """\
environments: [integration, production]
teams: {{platform: {{notify: []}}}}
defaults:
  deploy: {{driver: fake, duration: {duration}, record: {record}}}
apps:
  web: {{repo: ./repos/web, team: platform}}
"""


def _project(tmp_path: Path, duration: float) -> Path:
    make_repo(tmp_path / "repos" / "web", {"app.py": "print('web')\n"})
    config = tmp_path / "conveyor.yaml"
    config.write_text(CONFIG.format(duration=duration, record=json.dumps(str(tmp_path / "record.jsonl"))))
    return config


def _conveyor(*args: str) -> list[str]:
    return [sys.executable, "-m", "conveyor", *args]


def _attempts(tmp_path: Path) -> list[tuple[int, int, str]]:
    db = Database(f"sqlite:///{tmp_path / 'conveyor.db'}")
    try:
        with db.read() as s:
            rows = s.execute(
                select(Step.id, StepAttempt.attempt, StepAttempt.outcome)
                .join(StepAttempt, StepAttempt.step_id == Step.id)
                .where(Step.kind == "deploy")
                .order_by(StepAttempt.id)
            ).all()
            return [(a, b, c) for a, b, c in rows]
    finally:
        db.dispose()


def _start_worker(config: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _conveyor("worker", "-c", str(config), "--quiet", *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip


def _wait_for_running_step(tmp_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (tmp_path / "conveyor.db").exists() and any(o == "running" for _, _, o in _attempts(tmp_path)):
            return
        time.sleep(0.1)
    raise AssertionError("no deploy step started")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_lets_a_running_step_finish_within_grace(tmp_path: Path) -> None:
    config = _project(tmp_path, duration=2)
    subprocess.run(_conveyor("release", "-c", str(config), "web"), check=True, capture_output=True)
    worker = _start_worker(config, "--grace", "20")
    _wait_for_running_step(tmp_path)
    worker.send_signal(signal.SIGTERM)
    _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "finishing running steps" in err
    first = _attempts(tmp_path)
    assert [o for _, _, o in first] == ["succeeded"], first  # finished, not cut short nor re-queued
    subprocess.run(_conveyor("worker", "-c", str(config), "--quiet", "--exit-when-idle"), check=True, timeout=60)
    attempts = _attempts(tmp_path)
    assert [(n, o) for _, n, o in attempts] == [(1, "succeeded"), (1, "succeeded")]  # integration, production


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_past_grace_hands_the_step_back_at_once(tmp_path: Path) -> None:
    config = _project(tmp_path, duration=30)
    subprocess.run(_conveyor("release", "-c", str(config), "web"), check=True, capture_output=True)
    worker = _start_worker(config, "--grace", "0.5", "--lease", "60")
    _wait_for_running_step(tmp_path)
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0
    assert time.monotonic() - stopped_at < 10  # did not wait for the 30 s deploy
    assert "grace period over: handing 1 running step(s) back to the queue" in err
    assert "lease was lost" not in err, err  # a routine stop is not a fault
    assert [o for _, _, o in _attempts(tmp_path)] == ["released"]
    # the next worker takes the step at once, although the 60 s lease would not have expired yet
    nxt = _start_worker(config, "--grace", "0.5")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_attempts(tmp_path)) < 2:
            time.sleep(0.1)
        attempts = _attempts(tmp_path)
        assert [(n, o) for _, n, o in attempts] == [(1, "released"), (2, "running")], attempts
    finally:
        nxt.send_signal(signal.SIGTERM)
        nxt.communicate(timeout=30)
