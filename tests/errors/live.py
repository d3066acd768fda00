"""A real ``conveyor serve`` whose ``public_url`` is its own loopback address, so ``conveyor dsn`` gives
a DSN a Sentry SDK can send to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.web.test_serve import Live, free_port, start

CONFIG = """\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
public_url: http://127.0.0.1:{port}
defaults:
  deploy: {{driver: fake, duration: 0.1}}
  checks: []
apps:
  web: {{repo: ./repos/web, team: publishing}}
  api: {{repo: ./repos/api, team: publishing}}
errors:
{errors}
"""


@contextmanager
def serving(root: Path, errors: str = "  retention: 14d", db_url: str | None = None) -> Iterator[Live]:
    port = free_port()
    env = {"CONVEYOR_DATABASE_URL": db_url} if db_url else None
    live = start(root, CONFIG.format(port=port, errors=errors), port=port, env=env, quiet=True)
    try:
        yield live
    finally:
        if live.process.poll() is None:
            live.stop()
        if live.process.poll() is None:
            live.process.kill()
            live.process.wait()


def dsn(live: Live, app: str = "web", environment: str = "staging", db_url: str | None = None) -> str:
    env = {"CONVEYOR_DATABASE_URL": db_url} if db_url else {}
    result = live.project.run("dsn", app, "--env", environment, env=env)
    assert result.exit_code == 0, result.output
    return result.output.strip()
