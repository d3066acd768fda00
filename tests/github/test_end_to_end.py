"""GitHub drives the pipeline, end to end: a real repository, signed webhooks to the in-process API with a
conductor attached, a GitHub API stand-in on loopback for what the intake reads, the ``local`` driver and
``http`` checks.

- a push and a green check suite: the release reaches production;
- a red check run: no release, and ``why`` says which check failed with its link;
- conveyor stopped while two pushes land: started again, reconciliation releases the newest.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from conveyor.cli.main import cli
from conveyor.config import Config, load_config
from conveyor.drivers.local import stop_all
from conveyor.engine.conductor import Conductor
from conveyor.github.chores import github_chores
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from conveyor.store.tables import Candidate, Release
from conveyor.web import create_app
from tests.github.conftest import ENVIRON, post_hook
from tests.github.stand_in import LoopbackReads, StandIn, check_run
from tests.gitrepos import git
from tests.integration.harness import add_commit, deployment_state, free_port, make_app_repo, wait_for, write_config
from tests.integration.test_pipeline_local import APP, answer

ENVS = ("integration", "staging", "production")
REPO = "acme/web"


def config_text(ports: dict[str, int]) -> str:
    envs = "\n".join(f"      {env}: {{vars: {{port: {port}}}}}" for env, port in ports.items())
    return f"""\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
github:
  webhook_secret: ${{GITHUB_WEBHOOK_SECRET}}
  reconcile_interval: 1h
defaults:
  deploy: {{driver: local, start: ["{sys.executable}", "app.py"], ready_path: /health, ready_timeout: 20}}
  checks:
    - {{name: health, type: http, url: "http://127.0.0.1:{{port}}/health", count: 2, interval: 0.1}}
  ci: {{required: [test], timeout: 1h}}
apps:
  web:
    repo: ./repos/web
    github: {REPO}
    team: publishing
    environments:
{envs}
"""


class Running:
    """A conductor with the GitHub chores on a thread, and the API attached to it."""

    def __init__(self, config: Config, db: Database, reads: LoopbackReads) -> None:
        self.conductor = Conductor(
            config, db, poll_interval=0.05, grace_seconds=5, chores=github_chores(config, db, reads)
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.conductor.run, args=(self.stop,), daemon=True)
        self.thread.start()
        self.client = TestClient(create_app(config, db, conductor=self.conductor))

    def close(self) -> None:
        self.client.close()
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def github() -> Iterator[StandIn]:
    stand_in = StandIn()
    yield stand_in
    stand_in.close()


def push(repo: Path, sha: str, before: str) -> dict[str, Any]:
    message = git(repo, "log", "-1", "--format=%B", sha)
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": sha,
        "compare": f"https://github.com/{REPO}/compare/{before[:12]}...{sha[:12]}",
        "commits": [
            {
                "id": sha,
                "message": message,
                "author": {"name": "A User", "email": "user@example.org", "username": "a-user"},
                "added": [],
                "modified": ["app.py"],
                "removed": [],
            }
        ],
        "repository": {"full_name": REPO, "html_url": f"https://github.com/{REPO}"},
    }


def suite(sha: str) -> dict[str, Any]:
    return {
        "action": "completed",
        "check_suite": {
            "head_sha": sha,
            "head_branch": "main",
            "status": "completed",
            "conclusion": "success",
            "app": {"slug": "github-actions", "name": "GitHub Actions"},
        },
        "repository": {"full_name": REPO},
    }


def release_of(db: Database, sha: str) -> Release | None:
    with db.read() as session:
        return session.scalars(select(Release).where(Release.sha == sha)).first()


def candidate_state(db: Database, sha: str) -> str | None:
    with db.read() as session:
        return session.scalar(select(Candidate.state).where(Candidate.sha == sha))


def in_production(db: Database, sha: str) -> bool:
    release = release_of(db, sha)
    return release is not None and deployment_state(db, "web", "production", release.id) == "succeeded"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_github_drives_releases_through_ci_to_production(tmp_path: Path, github: StandIn) -> None:
    repo = tmp_path / "repos" / "web"
    first = make_app_repo(repo, {"app.py": APP.format(version="1")}, "web 1 (#1)")
    ports = {env: free_port() for env in ENVS}
    config = load_config(write_config(tmp_path, config_text(ports)), ENVIRON)
    db = Database(f"sqlite:///{tmp_path / 'conveyor.db'}")
    upgrade(db)
    reads = LoopbackReads(github.url)
    state = github.state
    state.heads[(REPO, "main")] = first
    state.add_commit(REPO, first, None, "web 1 (#1)", ["app.py"], "a-user")
    running = Running(config, db, reads)
    try:
        # a push, then CI: the check suite's completion makes conveyor read its check runs
        assert post_hook(running.client, "push", push(repo, first, "0" * 40)).status_code == 202
        wait_for(lambda: candidate_state(db, first) == "waiting", 20, "the push to become a candidate")
        assert release_of(db, first) is None
        state.check_runs[first] = [check_run("test", first, "success")]
        assert post_hook(running.client, "check_suite", suite(first)).status_code == 202
        wait_for(lambda: in_production(db, first), 120, "the first release in production")
        assert all(answer(port).startswith("1 ") for port in ports.values())
        release = release_of(db, first)
        assert release is not None and release.created_by == "github"
        assert [c.get("login") for c in release.commits] == ["a-user"]
        assert release.pull_requests == [{"number": 1, "url": f"https://github.com/{REPO}/pull/1"}]
        assert any(r.startswith(f"/repos/{REPO}/commits/{first}/check-runs") for r in state.requests)

        # red CI: no release, and why says which check failed
        second = add_commit(repo, {"app.py": APP.format(version="2")}, "web 2")
        state.add_commit(REPO, second, first, "web 2", ["app.py"], "a-user")
        state.heads[(REPO, "main")] = second
        assert post_hook(running.client, "push", push(repo, second, first)).status_code == 202
        failed = {
            "action": "completed",
            "check_run": check_run("test", second, "failure", "https://ci.example.org/run/2"),
            "repository": {"full_name": REPO},
        }
        assert post_hook(running.client, "check_run", failed).status_code == 202
        wait_for(lambda: candidate_state(db, second) == "ci_failed", 20, "the red check run to fail the candidate")
        assert release_of(db, second) is None
        why = CliRunner().invoke(
            cli,
            ["why", "web", "-c", str(tmp_path / "conveyor.yaml")],
            env={"CONVEYOR_DATABASE_URL": db.url, "COLUMNS": "300"},
        )
        assert why.exit_code == 0, why.output
        assert f"{second[:7]} ci failed: CI failed: test (https://ci.example.org/run/2)" in why.output
    finally:
        running.close()

    # stopped while two pushes land; started again, reconciliation releases the newest
    third = add_commit(repo, {"app.py": APP.format(version="3")}, "web 3 (#3)")
    fourth = add_commit(repo, {"app.py": APP.format(version="4")}, "web 4 (#4)")
    state.add_commit(REPO, third, second, "web 3 (#3)", ["app.py"], "b-user")
    state.add_commit(REPO, fourth, third, "web 4 (#4)", ["app.py"], "a-user")
    state.heads[(REPO, "main")] = fourth
    state.check_runs[third] = [check_run("test", third, "success")]
    state.check_runs[fourth] = [check_run("test", fourth, "success")]
    running = Running(config, db, reads)
    try:
        wait_for(lambda: in_production(db, fourth), 120, "the newest push released by reconciliation")
        assert release_of(db, third) is None
        release = release_of(db, fourth)
        assert release is not None
        assert {c.get("login") for c in release.commits} >= {"a-user", "b-user"}
        assert [p["number"] for p in release.pull_requests] == [3, 4]
        assert release.compare_url == f"https://github.com/{REPO}/compare/{first}...{fourth}"
    finally:
        running.close()
        reads.close()
        stop_all(config.state_dir)
        db.dispose()
