"""A real app through integration → staging → production with the ``local`` driver and ``http`` checks.

The app's repository holds a stdlib-only HTTP server (``app.py``): it reads ``PORT``, answers ``/health``
with 200 and ``/`` with its version. Each environment has its own free loopback port (var ``port``). Two
tagged releases go through; afterwards every port answers with the second one, served by a process of
that release's checkout. A finalizer stops every process the test started.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor.drivers.local import read_record, stop_all
from conveyor.engine.executor import env_state_dir
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from tests.gitrepos import git
from tests.integration.harness import (
    add_commit,
    deployment_state,
    free_port,
    load,
    make_app_repo,
    run_until_idle,
    write_config,
)

ENVS = ("integration", "staging", "production")
APP = """\
import http.server
import os

VERSION = {version!r}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            status, body = 200, "ok"
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


http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def config_text(ports: dict[str, int]) -> str:
    envs = "\n".join(f"      {env}: {{vars: {{port: {port}}}}}" for env, port in ports.items())
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
"""


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / ".conveyor"
    yield state
    stop_all(state)


def answer(port: int, path: str = "/") -> str:
    with httpx.Client(trust_env=False, timeout=5) as client:
        response = client.get(f"http://127.0.0.1:{port}{path}")
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_real_app_flows_to_production(tmp_path: Path, state_dir: Path) -> None:
    repo = tmp_path / "repos" / "web"
    make_app_repo(repo, {"app.py": APP.format(version="1")}, "web 1")
    git(repo, "tag", "v1")
    ports = {env: free_port() for env in ENVS}
    config = load(write_config(tmp_path, config_text(ports)))
    assert config.state_dir == state_dir
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    db = Database(url)
    try:
        upgrade(db)
        ops = Operations(config, db)
        first = ops.create_release("web")
        assert first.label == "v1"
        run_until_idle(config, url, timeout=90)
        assert [deployment_state(db, "web", env, first.release_id) for env in ENVS] == ["succeeded"] * 3
        assert {answer(port) for port in ports.values()} == {"1 v1"}

        sha = add_commit(repo, {"app.py": APP.format(version="2")}, "web 2", tag="v2")
        second = ops.create_release("web")
        assert (second.label, second.sha) == ("v2", sha)
        run_until_idle(config, url, timeout=90)

        assert [deployment_state(db, "web", env, second.release_id) for env in ENVS] == ["succeeded"] * 3
        for env, port in ports.items():
            assert answer(port) == "2 v2", env
            assert answer(port, "/health") == "ok"
            record = read_record(env_state_dir(config, "web", env))
            assert record is not None and (record.sha, record.version, record.port) == (sha, "v2", port)
    finally:
        db.dispose()
