"""End to end: a release that starts throwing errors in staging, reported by the real sentry-sdk to
conveyor's own error intake, is failed there by ``error_rate`` and never reaches production.

A real ``conveyor serve`` (HTTP intake and conductor in one process) runs on a loopback port that is its
``public_url``, so the DSNs ``conveyor dsn`` prints point at it. The app, deployed by the ``local``
driver, is a small web server that initialises sentry-sdk from ``SENTRY_DSN`` (a var of its
environment), ``CONVEYOR_APP``/``CONVEYOR_VERSION`` (its release, ``web@v1``: the check's
``release_prefix: "{app}@"``) and ``CONVEYOR_ENV``, and captures exceptions from a background thread at
a rate its source sets. Release 1 throws a few per second and reaches production; release 2's commit
raises the rate and brings a new exception: staging fails it on ``error_rate`` (counts from the intake,
the baseline being release 1's errors since its deploy), production keeps release 1, ``conveyor why``
shows the counts and ``conveyor errors`` names release 2 as the one that introduced the new issue.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from conveyor.drivers.local import stop_all
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.error_events import count_events
from conveyor.store.tables import Event
from tests.gitrepos import git
from tests.integration.harness import (
    add_commit,
    deployment_state,
    free_port,
    load,
    make_app_repo,
    run_cli,
    write_config,
)

APP = """\
import http.server
import os
import threading
import time

import sentry_sdk

ERRORS_PER_SECOND = {rate!r}

sentry_sdk.init(
    dsn=os.environ["SENTRY_DSN"],
    release=f"{{os.environ['CONVEYOR_APP']}}@{{os.environ['CONVEYOR_VERSION']}}",
    environment=os.environ["CONVEYOR_ENV"],
    send_client_reports=False,
)


def load_cart(n):
    raise LookupError(f"cart {{n}} expired")


def charge(n):
    raise {error}(f"cannot charge order {{n}}")


def throw_errors():
    n = 0
    while True:
        time.sleep(1 / ERRORS_PER_SECOND)
        n += 1
        try:
            {call}(n)
        except Exception:
            sentry_sdk.capture_exception()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


threading.Thread(target=throw_errors, daemon=True).start()
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
RELEASE_ONE = APP.format(rate=2.0, error="ValueError", call="load_cart")  # a few expired carts a second
RELEASE_TWO = APP.format(rate=25.0, error="ZeroDivisionError", call="charge")  # every charge fails

WINDOW = 4  # seconds of release 2's errors the check counts, once the window is full


def config_text(serve_port: int, ports: dict[str, int], dsns: dict[str, str] | None) -> str:
    def env_vars(env: str) -> str:
        dsn = f", sentry_dsn: {json.dumps(dsns[env])}" if dsns else ""
        return f"{{port: {ports[env]}{dsn}}}"

    return f"""\
environments: [staging, production]
public_url: http://127.0.0.1:{serve_port}
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: local, start: ["{sys.executable}", "app.py"], ready_path: /health, ready_timeout: 30}}
  checks: []
apps:
  web:
    repo: ./repos/web
    team: publishing
    environments:
      staging:
        vars: {env_vars("staging")}
        checks:
          - name: errors
            type: error_rate
            source: conveyor
            release_prefix: "{{app}}@"
            window: {WINDOW}s
            baseline: 1h
            initial_delay: {WINDOW}s  # as the docs advise: the check waits out the rounding
            on_too_few: pass
      production:
        vars: {env_vars("production")}
"""


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / ".conveyor"
    yield state
    stop_all(state)


def wait_for(what: str, predicate: Callable[[], bool], serve: ServeProcess, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.process.poll() is None, f"conveyor serve exited:\n{serve.output()}"
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; conveyor serve said:\n{serve.output()}")


class ServeProcess:
    def __init__(self, root: Path, port: int, database_url: str) -> None:
        import subprocess

        from tests.integration.harness import CONVEYOR_CLI, cli_environ

        self.log = root / "serve.log"
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [str(CONVEYOR_CLI), "serve", "-c", str(root / "conveyor.yaml"), "--port", str(port), "--grace", "5"],
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=cli_environ(database_url),
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2, trust_env=False).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_release_that_throws_errors_through_the_real_sdk_never_reaches_production(
    tmp_path: Path, db_url: str, state_dir: Path
) -> None:
    repo = tmp_path / "repos" / "web"
    make_app_repo(repo, {"app.py": RELEASE_ONE}, "web 1: a few expired carts")
    git(repo, "tag", "v1")
    serve_port = free_port()
    ports = {"staging": free_port(), "production": free_port()}

    # The DSNs come from `conveyor dsn`, as an operator gets them, then go into the config as vars.
    write_config(tmp_path, config_text(serve_port, ports, None), database_url=db_url)
    dsns = {}
    for env in ports:
        done = run_cli("dsn", "web", "--env", env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        dsns[env] = done.stdout.strip()
        assert dsns[env].startswith("http://") and f"@127.0.0.1:{serve_port}/" in dsns[env], dsns[env]
    path = write_config(tmp_path, config_text(serve_port, ports, dsns), database_url=db_url)
    config = load(path)
    assert config.state_dir == state_dir

    db = Database(db_url)
    serve = ServeProcess(tmp_path, serve_port, db_url)
    try:
        wait_for("conveyor serve to answer", serve.healthy, serve)
        ops = Operations(config, db)

        def errors_of(release: str, env: str = "staging") -> int:
            with db.read() as session:
                now = datetime.now(UTC)
                return count_events(
                    session,
                    app="web",
                    environment=env,
                    start=now - timedelta(hours=1),
                    end=now + timedelta(minutes=1),
                    release=release,
                )

        one = ops.create_release("web")
        assert one.label == "v1"
        wait_for(
            "release 1 in production",
            lambda: deployment_state(db, "web", "production", one.release_id) == "succeeded",
            serve,
        )
        # release 1's errors arrive, tagged as the check counts them: a baseline to compare release 2 with
        wait_for("a baseline of release 1's errors", lambda: errors_of("web@v1") >= 15, serve)
        # production's key files its errors under production
        wait_for("release 1's errors in production", lambda: errors_of("web@v1", env="production") > 0, serve)

        add_commit(repo, {"app.py": RELEASE_TWO}, "web 2: charge every order", tag="v2")
        two = ops.create_release("web")
        assert two.label == "v2"
        wait_for(
            "release 2 to fail in staging",
            lambda: deployment_state(db, "web", "staging", two.release_id) in ("failed", "succeeded"),
            serve,
            timeout=120,
        )
        assert deployment_state(db, "web", "staging", two.release_id) == "failed"
        assert deployment_state(db, "web", "production", two.release_id) is None, "an erroring release was promoted"
        assert errors_of("web@v2") > 0 and errors_of("web@v2", env="production") == 0

        why = run_cli("why", "web", "--json", cwd=tmp_path)
        assert why.returncode == 0, why.stderr
        answer = json.loads(why.stdout)
        staging = answer["environments"]["staging"]
        assert staging["failed_step"]["name"] == "errors", staging
        [measurement] = staging["failed_step"]["measurements"]
        assert measurement["phase"] == "fail", measurement
        message = measurement["message"]
        assert "error rate significantly above 2× baseline" in message, message
        assert f"errors in {WINDOW}s after the deploy" in message and " before, ratio " in message, message
        value = json.loads(measurement["value"])
        # (a few of release 1's first errors arrive before its deploy finished: outside the baseline)
        assert value["after"] >= 20 and value["before"] >= 5, value
        assert answer["environments"]["production"]["live"] == "v1", answer["environments"]["production"]

        text = run_cli("why", "web", cwd=tmp_path)
        assert text.returncode == 0, text.stderr
        shown = " ".join(text.stdout.split())  # the terminal's width may wrap the message anywhere between words
        assert f"errors in {WINDOW}s after the deploy" in shown and "failed check 'errors' in staging" in shown, shown

        listed = run_cli("errors", "web", "--env", "staging", "--json", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        issues = {i["title"].split(":")[0]: i for i in json.loads(listed.stdout)["issues"]}
        assert issues["ZeroDivisionError"]["first_release"] == "web@v2", issues
        assert issues["ZeroDivisionError"]["culprit"] == "__main__ in charge"
        assert issues["LookupError"]["first_release"] == "web@v1"

        # the team was told of the new issue as brought by release 2, the release just deployed: the
        # SDK's "web@v2" names conveyor's release v2
        with db.read() as session:
            told = {
                e.payload["title"].split(":")[0]: e
                for e in session.scalars(select(Event).where(Event.kind == "error.new_issue", Event.app == "web"))
                if e.environment == "staging"
            }
        new_issue = told["ZeroDivisionError"]
        assert new_issue.release_id == two.release_id, (new_issue.message, new_issue.payload)
        assert new_issue.payload["release_just_deployed"] is True, (new_issue.message, new_issue.payload)
        assert "first seen in web@v2, the release just deployed" in new_issue.message
        assert told["LookupError"].release_id == one.release_id
    finally:
        serve.stop()
        db.dispose()
