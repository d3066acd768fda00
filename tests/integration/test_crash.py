"""A worker killed with SIGKILL mid-deploy: its step is re-run by another worker, never the pipeline.

A real ``conveyor worker`` process claims the integration deploy (a fake deploy of ~4 s) under a short
lease; once the step is running and its first log lines are stored, the worker is killed with
``kill -9``. A second worker, started with ``--exit-when-idle``, finds the step's lease expired, re-queues
it (the attempt is closed as "expired") and runs it again; the pipeline then finishes to production.

The fake driver appends its JSONL record line when a deploy call *ends*, so the killed attempt leaves no
line there: the record shows one completed deploy per environment, all by the second worker, and the
killed attempt is visible in ``step_attempts``, the step's log and the ``step.requeued`` event.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.step_logs import read_step_log
from conveyor.store.tables import Event, Step, StepAttempt
from tests.integration.harness import (
    CONVEYOR_CLI,
    attempts,
    cli_environ,
    deployment_state,
    load,
    make_app_repo,
    wait_for,
    write_config,
)

LEASE = 2.0
CONFIG = """\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: fake, duration: 0.2, record: "{record}"}}
  checks: []
apps:
  web:
    repo: ./repos/web
    team: publishing
    environments:
      integration: {{deploy: {{duration: 4}}}}
"""


def start_worker(config: Path, url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [str(CONVEYOR_CLI), "worker", "-c", str(config), "--quiet", "--lease", str(LEASE), *extra]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=cli_environ(url), stdout=out, stderr=subprocess.STDOUT)


def running_deploy(db: Database) -> Step | None:
    """The integration deploy step, once it runs and its first log lines reached the store."""
    with db.read() as session:
        row = session.execute(
            select(Step)
            .join(StepAttempt, StepAttempt.step_id == Step.id)
            .where(Step.kind == "deploy", StepAttempt.outcome == "running")
        ).first()
        return row[0] if row and "attempt 1" in read_step_log(session, row[0].id) else None


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_killed_worker_step_is_rerun_once_by_another_worker(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "web")
    record = tmp_path / "deploys.jsonl"
    config_path = write_config(tmp_path, CONFIG.format(record=record))
    config = load(config_path)
    db = Database(db_url)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        release = Operations(config, db).create_release("web")

        first = start_worker(config_path, db_url, tmp_path / "worker-1.log")
        workers.append(first)
        wait_for(lambda: running_deploy(db) is not None or first.poll() is not None, 30, "the deploy to run")
        assert first.poll() is None, (tmp_path / "worker-1.log").read_text()
        killed = running_deploy(db)
        assert killed is not None
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL

        second = start_worker(config_path, db_url, tmp_path / "worker-2.log", "--exit-when-idle")
        workers.append(second)
        assert second.wait(60) == 0, (tmp_path / "worker-2.log").read_text()

        envs = ("integration", "staging", "production")
        assert [deployment_state(db, "web", env, release.release_id) for env in envs] == ["succeeded"] * 3

        rows = attempts(db)
        per_step = Counter(a.step_id for a in rows)
        assert max(per_step.values()) <= 2, per_step
        assert [s for s, n in per_step.items() if n == 2] == [killed.id], "only the killed step re-ran"
        first_try, second_try = (a for a in rows if a.step_id == killed.id)
        assert (first_try.attempt, first_try.outcome) == (1, "expired")
        assert (second_try.attempt, second_try.outcome) == (2, "succeeded")
        assert first_try.owner != second_try.owner
        assert first_try.environment == "integration" and first_try.kind == "deploy"
        assert first_try.finished_at is not None and first_try.finished_at <= second_try.started_at
        assert {a.owner for a in rows if a.step_id != killed.id} == {second_try.owner}

        with db.read() as session:
            step = session.get(Step, killed.id)
            assert step is not None and step.attempt == 2 and step.state == "succeeded"
            log = read_step_log(session, killed.id)
            assert "attempt 1" in log and "attempt 2" in log
            requeued = list(session.scalars(select(Event).where(Event.kind == "step.requeued")))
        assert [(e.payload["step_id"], e.payload["attempt"]) for e in requeued] == [(killed.id, 1)]
        assert requeued[0].payload["owner"] == first_try.owner

        lines = [json.loads(line) for line in record.read_text().splitlines()]
        assert [(r["environment"], r["attempt"], r["outcome"]) for r in lines] == [
            ("integration", 2, "succeeded"),
            ("staging", 1, "succeeded"),
            ("production", 1, "succeeded"),
        ]
        assert {r["pid"] for r in lines} == {second.pid}, "a deploy ran in the killed worker after all"
        integration = lines[0]
        assert integration["end"] - integration["start"] >= 3.9
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        db.dispose()
