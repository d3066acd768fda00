"""The API in-process: a project with real git repositories, a migrated database, and a FastAPI TestClient.

``Api.work()`` runs a conductor in the test's thread until nothing is left to do, as
``conveyor worker --exit-when-idle`` would, so a test can move deployments along between requests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from fastapi.testclient import TestClient

from conveyor.config import Config, load_config
from conveyor.engine.conductor import Conductor
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from conveyor.web import create_app
from tests.cli.conftest import BASE_CONFIG, Project, write_project

TOKEN = "ci-token-0123456789abcdef"
OTHER_TOKEN = "deploy-bot-token-fedcba9876543210"
API_SECTION = """\
api:
  tokens:
    - {name: ci, token: "${CONVEYOR_CI_TOKEN}"}
    - {name: bot, token: "${CONVEYOR_BOT_TOKEN}"}
"""
API_CONFIG = BASE_CONFIG + API_SECTION
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def environ(db_url: str) -> dict[str, str]:
    return {"CONVEYOR_CI_TOKEN": TOKEN, "CONVEYOR_BOT_TOKEN": OTHER_TOKEN, "CONVEYOR_DATABASE_URL": db_url}


@dataclass
class Api:
    project: Project
    config: Config
    db: Database
    client: TestClient

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, json: Any = None, *, token: str | None = TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(path, json=json, headers=headers)

    def ok(self, path: str, json: Any = None, status: int | None = None) -> dict[str, Any]:
        response = self.post(path, json)
        assert response.is_success, (response.status_code, response.text)
        if status is not None:
            assert response.status_code == status, response.text
        data: dict[str, Any] = response.json()
        return data

    def cli(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        """``conveyor ARGS -c CONFIG`` in-process, on this API's database and tokens."""
        return self.project.run(*args, env={**environ(self.db.url), **(env or {})})

    def work(self) -> None:
        conductor = Conductor(self.config, self.db, poll_interval=0.02, grace_seconds=5)
        conductor.run(threading.Event(), exit_when_idle=True)

    def environment(self, app: str, env: str) -> dict[str, Any]:
        state: dict[str, Any] = self.get(f"/api/apps/{app}").json()["environments"][env]
        return state


def make_api(root: Path, db_url: str, config_text: str = API_CONFIG) -> Iterator[Api]:
    project = write_project(root, config_text)
    config = load_config(project.config, environ(db_url))
    db = Database(db_url)
    upgrade(db)
    with TestClient(create_app(config, db)) as client:
        yield Api(project, config, db, client)
    db.dispose()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """SQLite only: most API behaviour does not depend on the backend (see test_backends.py for both)."""
    yield from make_api(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}")


def failing_in_staging(project_root: Path, sha: str) -> str:
    """The API config with web's release ``sha`` failing its deploy in staging (which blocks web there)."""
    return API_CONFIG.replace(
        "web: {repo: ./repos/web, team: publishing, groups: [router]}",
        "web:\n"
        "    repo: ./repos/web\n"
        "    team: publishing\n"
        "    groups: [router]\n"
        "    environments:\n"
        f"      staging: {{deploy: {{driver: fake, fail_versions: ['{sha[:8]}']}}}}\n",
    )


@pytest.fixture
def blocked(api: Api) -> Iterator[Api]:
    """web's first release failed in staging, so web is blocked there; integration has it."""
    sha = api.project.head("web")
    api.project.config.write_text(failing_in_staging(api.project.root, sha))
    config = load_config(api.project.config, environ(api.db.url))
    with TestClient(create_app(config, api.db)) as client:
        blocked_api = Api(api.project, config, api.db, client)
        blocked_api.ok("/api/apps/web/releases")
        blocked_api.work()
        yield blocked_api
