"""A real ``conveyor serve`` whose ``public_url`` is its own loopback address, so ``conveyor dsn`` gives
a DSN a Sentry SDK can send to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.cli.conftest import write_project
from tests.web.test_serve import Live, free_port

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
    project = write_project(root, CONFIG.format(port=port, errors=errors))
    script = shutil.which("conveyor", path=str(Path(sys.executable).parent))
    assert script
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    if db_url:
        env["CONVEYOR_DATABASE_URL"] = db_url
    log = root / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [script, "serve", "-c", str(project.config), "--port", str(port), "--grace", "5", "--quiet"],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    live = Live(project, process, f"http://127.0.0.1:{port}", log)

    def healthy() -> bool:
        try:
            return httpx.get(f"{live.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        live.wait_until(healthy)
        yield live
    finally:
        if process.poll() is None:
            live.stop()
        if process.poll() is None:
            process.kill()
            process.wait()


def dsn(live: Live, app: str = "web", environment: str = "staging", db_url: str | None = None) -> str:
    env = {"CONVEYOR_DATABASE_URL": db_url} if db_url else {}
    result = live.project.run("dsn", app, "--env", environment, env=env)
    assert result.exit_code == 0, result.output
    return result.output.strip()
