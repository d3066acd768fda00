"""Rollback and veto end to end: a real app with the ``local`` driver and ``http`` checks.

The app's repository holds a stdlib-only HTTP server that answers ``/`` with its version, ``/health``
with 200, and ``/ready`` with 200, except release 2, whose ``/ready`` answers 500 (a bad release that
starts fine). Each environment has its own loopback port.

- By hand: v1 then v2 reach production; ``rollback`` brings v1 back (it answers on the port), v2 is
  vetoed there and never started there again although it stays healthy in staging; v3 flows normally.
- ``on_failure: rollback``: v2 fails production's ``/ready`` check; v1 is redeployed at once and answers,
  v2 is vetoed, and production stays blocked as after any failure.
- A release that exits at start fails its deploy after the ``local`` driver stopped the release before
  it: nothing runs there, and status, why and the rollback say so and bring the last good one back (by
  hand, or at once with ``on_failure: rollback``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from conveyor import views
from conveyor.drivers.local import stop_all
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Deployment, Hold
from tests.gitrepos import git
from tests.integration.harness import add_commit, free_port, load, make_app_repo, run_until_idle, write_config

ENVS = ("integration", "staging", "production")
APP = """\
import http.server
import os

VERSION = {version!r}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            status, body = 200, "ok"
        elif self.path == "/ready":
            status, body = (500, "not ready") if VERSION == "2" else (200, "ready")
        elif self.path == "/":
            status, body = 200, f"{{VERSION}} {{os.environ.get('CONVEYOR_VERSION', '')}}"
        else:
            status, body = 404, "not found"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if VERSION == "crash":
    raise SystemExit(3)  # a release that exits before it serves: its deploy fails after the old one stopped
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def config_text(ports: dict[str, int], *, production: str) -> str:
    envs = "\n".join(f"      {env}: {{vars: {{port: {port}}}}}" for env, port in ports.items() if env != "production")
    return f"""\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: local, start: ["{sys.executable}", "app.py"], ready_path: /health, ready_timeout: 20}}
  checks:
    - {{name: health, type: http, url: "http://127.0.0.1:{{port}}/health", count: 2, interval: 0.1}}
apps:
  web:
    repo: ./repos/web
    team: publishing
    environments:
{envs}
      production:
        vars: {{port: {ports["production"]}}}
{production}
"""


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / ".conveyor"
    yield state
    stop_all(state)


def answer(port: int) -> str:
    with httpx.Client(trust_env=False, timeout=5) as client:
        response = client.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 200, response.text
    return response.text


def production_deployments(db: Database, release_id: int) -> list[str]:
    with db.read() as s:
        return list(
            s.scalars(
                select(Deployment.state)
                .where(Deployment.environment == "production", Deployment.release_id == release_id)
                .order_by(Deployment.id)
            )
        )


def open_holds(db: Database) -> set[tuple[str, str | None, int | None]]:
    with db.read() as s:
        return {(h.kind, h.environment, h.release_id) for h in s.scalars(select(Hold).where(Hold.lifted_at.is_(None)))}


def web_v1(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """The app's repository with v1 tagged, and a free loopback port per environment."""
    repo = tmp_path / "repos" / "web"
    make_app_repo(repo, {"app.py": APP.format(version="1")}, "web 1")
    git(repo, "tag", "v1")
    return repo, {env: free_port() for env in ENVS}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_rollback_by_hand_vetoes_the_release_and_a_newer_one_flows(
    tmp_path: Path, state_dir: Path, db_url: str
) -> None:
    repo, ports = web_v1(tmp_path)
    config = load(write_config(tmp_path, config_text(ports, production="")))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        v1 = ops.create_release("web")
        run_until_idle(config, db_url, timeout=90)
        add_commit(repo, {"app.py": APP.format(version="1.5")}, "web 2", tag="v2")
        v2 = ops.create_release("web")
        run_until_idle(config, db_url, timeout=90)
        assert answer(ports["production"]) == "1.5 v2"

        result = ops.rollback("web", "production", "bad gateway errors", actor="cli:an-operator")
        assert (result.to, result.rolled_back_from) == ("v1", "v2")
        run_until_idle(config, db_url, timeout=90)
        assert answer(ports["production"]) == "1 v1"
        assert answer(ports["staging"]) == "1.5 v2"
        (status,) = views.status(db, config, "web")
        production = status.environments["production"]
        assert (production.current, production.health, production.last_good) == ("v1", "healthy", "v1")
        assert (status.environments["staging"].current, status.environments["staging"].health) == ("v2", "healthy")
        assert ("veto", "production", v2.release_id) in open_holds(db)
        explanation = views.why(db, config, "web", "production")["environments"]["production"]["explanation"]
        assert "v2 vetoed: rolled back by cli:an-operator at" in explanation and "(bad gateway errors)" in explanation

        # staging is idle with v2 healthy there: planning again never starts v2 in production
        run_until_idle(config, db_url, timeout=30)
        assert production_deployments(db, v2.release_id) == ["succeeded"]
        assert production_deployments(db, v1.release_id) == ["succeeded", "succeeded"]
        with pytest.raises(Exception, match="vetoed in production"):
            ops.promote("web", "production")

        add_commit(repo, {"app.py": APP.format(version="3")}, "web 3", tag="v3")
        v3 = ops.create_release("web")
        run_until_idle(config, db_url, timeout=90)
        assert production_deployments(db, v3.release_id) == ["succeeded"]
        assert answer(ports["production"]) == "3 v3"
        assert views.status(db, config, "web")[0].environments["production"].current == "v3"
    finally:
        db.dispose()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_on_failure_rollback_brings_the_last_good_release_back(tmp_path: Path, state_dir: Path, db_url: str) -> None:
    repo, ports = web_v1(tmp_path)
    production = """\
        on_failure: rollback
        checks:
          - {name: ready, type: http, url: "http://127.0.0.1:{port}/ready", count: 2, interval: 0.1}"""
    config = load(write_config(tmp_path, config_text(ports, production=production)))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        v1 = ops.create_release("web")
        run_until_idle(config, db_url, timeout=90)
        assert answer(ports["production"]) == "1 v1"
        add_commit(repo, {"app.py": APP.format(version="2")}, "web 2", tag="v2")
        v2 = ops.create_release("web")
        run_until_idle(config, db_url, timeout=120)

        assert production_deployments(db, v2.release_id) == ["failed"]
        assert production_deployments(db, v1.release_id) == ["succeeded", "succeeded"]
        assert answer(ports["production"]) == "1 v1"
        assert {("veto", "production", v2.release_id), ("block", "production", v2.release_id)} <= open_holds(db)
        (status,) = views.status(db, config, "web")
        assert (status.environments["production"].current, status.environments["production"].health) == (
            "v1",
            "healthy",
        )
        why = views.why(db, config, "web", "production")["environments"]["production"]["explanation"]
        assert "rolling back to v1 (on_failure: rollback)" in why and "v2 vetoed: rolled back by conveyor" in why
        with db.read() as s:
            rollback = s.scalars(select(Deployment).where(Deployment.override == "rollback")).one()
            assert (rollback.created_by, rollback.release_id) == ("conveyor", v1.release_id)
    finally:
        db.dispose()


def refused(port: int) -> bool:
    try:
        answer(port)
    except httpx.TransportError:
        return True
    return False


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_failed_deploy_that_stopped_the_previous_release_says_nothing_runs(
    tmp_path: Path, state_dir: Path, db_url: str
) -> None:
    repo, ports = web_v1(tmp_path)
    config = load(write_config(tmp_path, config_text(ports, production="")))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        ops.create_release("web")
        run_until_idle(config, db_url, timeout=90)
        add_commit(repo, {"app.py": APP.format(version="crash")}, "web 2", tag="v2")
        v2 = ops.create_release("web")
        run_until_idle(config, db_url, timeout=90)
        # v2 exited at start in integration, after v1 had been stopped there
        (status,) = views.status(db, config, "web")
        integration = status.environments["integration"]
        assert (integration.state, integration.current, integration.health, integration.live) == (
            "failed",
            "v1",
            "stopped",
            None,
        )
        assert refused(ports["integration"])
        assert answer(ports["staging"]) == "1 v1"
        why = views.why(db, config, "web", "integration")["environments"]["integration"]["explanation"]
        assert why.startswith("nothing runs here (v1 was stopped by a deploy that then failed); "), why
        assert "nothing runs in integration now: v1 was stopped before the deploy failed" in why

        result = ops.rollback("web", "integration", "v2 does not start", actor="cli:an-operator")
        assert (result.to, result.rolled_back_from) == ("v1", "v2")
        run_until_idle(config, db_url, timeout=90)
        assert answer(ports["integration"]) == "1 v1"
        integration = views.status(db, config, "web")[0].environments["integration"]
        assert (integration.current, integration.health, integration.live) == ("v1", "healthy", "v1")
        assert ("veto", "integration", v2.release_id) in open_holds(db)
    finally:
        db.dispose()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_on_failure_rollback_redeploys_the_release_a_failed_deploy_stopped(
    tmp_path: Path, state_dir: Path, db_url: str
) -> None:
    repo, ports = web_v1(tmp_path)
    text = config_text(ports, production="").replace("defaults:\n", "defaults:\n  on_failure: rollback\n")
    config = load(write_config(tmp_path, text))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        v1 = ops.create_release("web")
        run_until_idle(config, db_url, timeout=90)
        add_commit(repo, {"app.py": APP.format(version="crash")}, "web 2", tag="v2")
        v2 = ops.create_release("web")
        run_until_idle(config, db_url, timeout=90)
        assert answer(ports["integration"]) == "1 v1"
        integration = views.status(db, config, "web")[0].environments["integration"]
        assert (integration.current, integration.health) == ("v1", "healthy")
        assert {("veto", "integration", v2.release_id), ("block", "integration", v2.release_id)} <= open_holds(db)
        with db.read() as s:
            rollback = s.scalars(select(Deployment).where(Deployment.override == "rollback")).one()
            assert (rollback.created_by, rollback.release_id, rollback.state) == (
                "conveyor",
                v1.release_id,
                "succeeded",
            )
    finally:
        db.dispose()
