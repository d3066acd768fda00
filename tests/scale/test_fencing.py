"""A worker that is merely slow (paused with SIGSTOP past its lease, then resumed with SIGCONT) cannot
corrupt anything: another worker takes the step over as a new attempt, and the paused worker's late
heartbeat and result are refused because it no longer holds the current attempt."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Step
from tests.integration.harness import CONVEYOR_CLI, attempts, cli_environ, load, make_app_repo, wait_for, write_config

LEASE = 2.0
CONFIG = """\
environments: [production]
teams: {{platform: {{notify: []}}}}
defaults:
  deploy: {{driver: fake, duration: 5, record: "{record}"}}
  checks: []
apps:
  web: {{repo: ./repos/web, team: platform}}
"""


def _worker(config: Path, url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [str(CONVEYOR_CLI), "worker", "-c", str(config), "--quiet", "--lease", str(LEASE), *extra]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=cli_environ(url), stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_paused_worker_wakes_to_find_its_writes_refused(
    tmp_path: Path, postgres_url: str, postgres_store: Database
) -> None:
    make_app_repo(tmp_path / "repos" / "web")
    record = tmp_path / "deploys.jsonl"
    config_path = write_config(tmp_path, CONFIG.format(record=record))
    db = postgres_store
    Operations(load(config_path), db).create_release("web", actor="test")
    slow = _worker(config_path, postgres_url, tmp_path / "slow.log")
    other: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: any(a.outcome == "running" for a in attempts(db)), 30, "the deploy to start")
        slow.send_signal(signal.SIGSTOP)
        other = _worker(config_path, postgres_url, tmp_path / "other.log", "--exit-when-idle")
        assert other.wait(timeout=60) == 0  # took the step over after the lease ran out, and finished it
        slow.send_signal(signal.SIGCONT)
        # the woken worker's deploy ends ~5 s after it began; give it time to try to write its result
        wait_for(lambda: len(record.read_text().splitlines()) >= 2, 30, "the paused worker's deploy to end")
        time.sleep(2 * LEASE)
    finally:
        slow.send_signal(signal.SIGCONT)
        slow.send_signal(signal.SIGTERM)
        slow.wait(timeout=30)
        if other is not None and other.poll() is None:
            other.kill()
            other.wait()
    runs = [a for a in attempts(db) if a.kind == "deploy"]
    assert [(a.attempt, a.outcome) for a in runs] == [(1, "expired"), (2, "succeeded")]
    assert runs[0].owner != runs[1].owner
    with db.read() as session:
        step = session.scalars(select(Step).where(Step.kind == "deploy")).one()
        assert step.state == "succeeded" and step.attempt == 2
        assert step.lease_owner is None  # the late heartbeat did not take the lease back
    both = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(r["attempt"] for r in both) == [1, 2]  # both runs happened; only attempt 2 counted
    assert "result refused" in (tmp_path / "slow.log").read_text()
