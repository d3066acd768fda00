"""A project as a user has it: a folder with real git repositories and a conveyor.yaml beside them.

``Project.run`` invokes the ``conveyor`` command in-process with click's ``CliRunner``, appending
``-c <config>`` to the arguments; ``Project.work`` runs the worker until nothing is left to do.
The worker installs SIGINT/SIGTERM handlers, so every test here puts the previous ones back.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conveyor.cli.main import cli
from tests.gitrepos import git, head, make_repo

BASE_CONFIG = """\
environments: [integration, staging, production]
teams: {publishing: {notify: []}}
groups: {router: {description: shared router}}
defaults:
  deploy: {driver: fake, duration: 0.1}
  checks: [{name: smoke, type: fake, count: 1}]
apps:
  web: {repo: ./repos/web, team: publishing, groups: [router]}
  api: {repo: ./repos/api, team: publishing, tier: manual, reason: runs migrations by hand}
"""


@dataclass
class Project:
    root: Path
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def config(self) -> Path:
        return self.root / "conveyor.yaml"

    def repo(self, app: str) -> Path:
        return self.root / "repos" / app

    def head(self, app: str) -> str:
        return head(self.repo(app))

    def run(self, *args: str, env: dict[str, str | None] | None = None, debug: bool = False) -> Result:
        """``conveyor [--debug] ARGS... -c CONFIG``, in-process."""
        root = ["--debug"] if debug else []
        environ: dict[str, str | None] = {"CONVEYOR_DATABASE_URL": None, **(env or {})}
        return self.runner.invoke(cli, [*root, *args, "-c", str(self.config)], env=environ, prog_name="conveyor")

    def ok(self, *args: str) -> Result:
        """Run and insist on exit 0 (the message carries what went wrong otherwise)."""
        result = self.run(*args)
        assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
        return result

    def work(self) -> Result:
        return self.ok("worker", "--exit-when-idle", "--quiet")


@pytest.fixture(autouse=True)
def _restore_signal_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def write_project(root: Path, config: str = BASE_CONFIG) -> Project:
    make_repo(root / "repos" / "web", {"app.py": "print('web')\n"}, "web: first commit")
    make_repo(root / "repos" / "api", {"app.py": "print('api')\n"}, "api: first commit")
    (root / "conveyor.yaml").write_text(config)
    return Project(root)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return write_project(tmp_path)


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Read-only: web v1.0 and api released and worked (web in production, api waiting for promotion).

    Tests using it must not change it; they share one worker run per module.
    """
    p = write_project(tmp_path_factory.mktemp("delivered"))
    git(p.repo("web"), "tag", "v1.0")
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        p.ok("release", "web")
        p.ok("release", "api")
        p.work()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    yield p
