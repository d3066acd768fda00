"""GitHub drives the pipeline, end to end: a real repository, signed webhooks to the in-process API with a
conductor attached (its own chores and notification sender, as ``serve`` runs it), the real GitHub client
configured in YAML (a GitHub App) talking to the OpenAPI-validating stand-in, which answers for the
repository from the real git repository. The ``local`` driver and ``http`` checks.

- a push and a green check suite: conveyor reads the suite's check runs, the release reaches
  production, and GitHub receives each environment's Deployment and its statuses in order;
- a red check run: no release, and ``why`` says which check failed with its link;
- conveyor stopped while two pushes land: started again, reconciliation (branch head, compare, check
  runs, statuses, workflow runs) releases the newest, and its Deployments mark the replaced ones inactive.
"""

from __future__ import annotations

import sys
import threading
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
from conveyor.notify.sender import Sender
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from conveyor.store.tables import Candidate, Release
from conveyor.web import create_app
from tests.github.conftest import APP_ID, ENVIRON, post_hook
from tests.github.standin import GitHubStandIn
from tests.gitrepos import git
from tests.integration.harness import deployment_state, free_port, make_app_repo, wait_for, write_config
from tests.integration.test_pipeline_local import APP, answer
from tests.notifications.running import FAST_RETRY

ENVS = ("integration", "staging", "production")
REPO = "acme/web"
A_USER = ("A User", "user@example.org", "a-user")  # the author of tests.gitrepos' commits
B_USER = ("B User", "b-user@example.org", "b-user")


def config_text(ports: dict[str, int], api_url: str) -> str:
    envs = "\n".join(f"      {env}: {{vars: {{port: {port}}}}}" for env, port in ports.items())
    return f"""\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
github:
  api_url: {api_url}
  webhook_secret: ${{GITHUB_WEBHOOK_SECRET}}
  app: {{id: {APP_ID}, private_key_file: ./github-app.pem}}
  reconcile_interval: 1h
notifiers:
  github: {{type: github}}
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
    """A conductor as ``serve`` makes it (the GitHub chores with the client of the config, its notification
    sender) on a thread, and the API attached to it."""

    def __init__(self, config: Config, db: Database) -> None:
        sender = Sender(config, db, owner="e2e-sender", poll_interval=0.05, retry=FAST_RETRY)
        self.conductor = Conductor(config, db, poll_interval=0.05, grace_seconds=5, sender=sender)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.conductor.run, args=(self.stop,), daemon=True)
        self.thread.start()
        self.client = TestClient(create_app(config, db, conductor=self.conductor))

    def close(self) -> None:
        self.client.close()
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def commit_as(repo: Path, author: tuple[str, str, str], version: str, message: str) -> str:
    (repo / "app.py").write_text(APP.format(version=version))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--author", f"{author[0]} <{author[1]}>", "-m", message)
    return git(repo, "rev-parse", "HEAD")


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
                "author": {"name": A_USER[0], "email": A_USER[1], "username": A_USER[2]},
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


def check_run(name: str, sha: str, conclusion: str, url: str = "https://ci.example.org/run/1") -> dict[str, Any]:
    return {
        "name": name,
        "head_sha": sha,
        "status": "completed",
        "conclusion": conclusion,
        "details_url": url,
        "started_at": "2026-11-29T08:00:00Z",
        "completed_at": "2026-11-29T08:01:00Z",
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


def on_github(standin: GitHubStandIn, environment: str) -> list[tuple[str, str]]:
    """(sha, state) of what GitHub was told about ``environment``, in the order it arrived."""
    return [(ref, state) for env, ref, state in standin.timeline() if env == environment]


def told(standin: GitHubStandIn, expected: dict[str, list[tuple[str, str]]]) -> bool:
    return all(on_github(standin, env) == steps for env, steps in expected.items())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_github_drives_releases_through_ci_to_production(
    tmp_path: Path, standin: GitHubStandIn, app_key: tuple[str, str]
) -> None:
    repo = tmp_path / "repos" / "web"
    first = make_app_repo(repo, {"app.py": APP.format(version="1")}, "web 1 (#1)")
    standin.logins.update({A_USER[1]: A_USER[2], B_USER[1]: B_USER[2]})
    (tmp_path / "github-app.pem").write_text(app_key[0])
    ports = {env: free_port() for env in ENVS}
    config = load_config(write_config(tmp_path, config_text(ports, standin.url)), ENVIRON)
    db = Database(f"sqlite:///{tmp_path / 'conveyor.db'}")
    upgrade(db)
    running = Running(config, db)
    try:
        # the reconciliation at start finds no branch on GitHub yet; then the repository is pushed
        wait_for(lambda: bool(standin.requests("GET", "/branches/main")), 30, "the reconciliation at start")
        assert [r.status for r in standin.requests("GET", "/branches/main")] == [404]
        standin.repositories[REPO] = repo  # GitHub's copy of the repository, from now on
        # a push, then CI: the check suite's completion makes conveyor read its check runs
        assert post_hook(running.client, "push", push(repo, first, "0" * 40)).status_code == 202
        wait_for(lambda: candidate_state(db, first) == "waiting", 30, "the push to become a candidate")
        assert release_of(db, first) is None
        standin.check_runs[first] = [check_run("test", first, "success")]
        assert post_hook(running.client, "check_suite", suite(first)).status_code == 202
        wait_for(lambda: in_production(db, first), 120, "the first release in production")
        assert all(answer(port).startswith("1 ") for port in ports.values())
        release = release_of(db, first)
        assert release is not None and release.created_by == "github"
        assert [c.get("login") for c in release.commits] == ["a-user"]
        assert release.pull_requests == [{"number": 1, "url": f"https://github.com/{REPO}/pull/1"}]
        assert standin.requests("GET", f"/repos/{REPO}/commits/{first}/check-runs")
        # the App authenticated as GitHub asks: a verified JWT exchanged for an installation token
        assert standin.jwts and standin.requests("POST", "/access_tokens")
        deployed_first = {env: [(first, "created"), (first, "in_progress"), (first, "success")] for env in ENVS}
        wait_for(lambda: told(standin, deployed_first), 60, "GitHub to hear of every deployment of the first")

        # red CI: no release, and why says which check failed
        second = commit_as(repo, A_USER, "2", "web 2")
        standin.check_runs[second] = [check_run("test", second, "failure", "https://ci.example.org/run/2")]
        assert post_hook(running.client, "push", push(repo, second, first)).status_code == 202
        failed = {
            "action": "completed",
            "check_run": check_run("test", second, "failure", "https://ci.example.org/run/2"),
            "repository": {"full_name": REPO},
        }
        assert post_hook(running.client, "check_run", failed).status_code == 202
        wait_for(lambda: candidate_state(db, second) == "ci_failed", 30, "the red check run to fail the candidate")
        assert release_of(db, second) is None
        why = CliRunner().invoke(
            cli,
            ["why", "web", "-c", str(tmp_path / "conveyor.yaml")],
            env={"CONVEYOR_DATABASE_URL": db.url, "COLUMNS": "300", **ENVIRON},
        )
        assert why.exit_code == 0, why.output
        assert f"{second[:7]} ci failed: CI failed: test (https://ci.example.org/run/2)" in why.output
        assert told(standin, deployed_first)  # GitHub hears of no deployment of it
    finally:
        running.close()

    # stopped while two pushes land; started again, reconciliation releases the newest
    third = commit_as(repo, B_USER, "3", "web 3 (#3)")
    fourth = commit_as(repo, A_USER, "4", "web 4 (#4)")
    standin.check_runs[third] = [check_run("test", third, "success")]
    standin.check_runs[fourth] = [check_run("test", fourth, "success")]
    running = Running(config, db)
    try:
        wait_for(lambda: in_production(db, fourth), 120, "the newest push released by reconciliation")
        assert release_of(db, third) is None
        release = release_of(db, fourth)
        assert release is not None
        # the commits since the last release, from the compare API: second, third and fourth
        assert [(c["sha"], c.get("login")) for c in release.commits] == [
            (second, "a-user"),
            (third, "b-user"),
            (fourth, "a-user"),
        ]
        assert [p["number"] for p in release.pull_requests] == [3, 4]
        assert release.compare_url == f"https://github.com/{REPO}/compare/{first}...{fourth}"
        assert standin.requests("GET", f"/repos/{REPO}/branches/main")
        assert standin.requests("GET", f"/repos/{REPO}/compare/{first}...{fourth}")
        assert standin.requests("GET", f"/repos/{REPO}/commits/{fourth}/status")
        assert any(r.query.get("head_sha") == fourth for r in standin.requests("GET", "/actions/runs"))
        # each environment: the first's Deployment, then the fourth's, which marks the first inactive
        deployed = {
            env: [*steps, (fourth, "created"), (fourth, "in_progress"), (fourth, "success"), (first, "inactive")]
            for env, steps in deployed_first.items()
        }
        wait_for(lambda: told(standin, deployed), 60, "GitHub to hear of every deployment of the newest")
        assert {d.repo for d in standin.deployments} == {REPO}
        assert all(not d.body["auto_merge"] and d.body["required_contexts"] == [] for d in standin.deployments)
    finally:
        running.close()
        stop_all(config.state_dir)
        db.dispose()
