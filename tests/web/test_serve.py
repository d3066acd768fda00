"""``conveyor serve`` as a real process: HTTP API and conductor together, stopped by SIGTERM with exit 0;
and the CLI's remote mode (``--server`` / ``CONVEYOR_URL``, ``CONVEYOR_TOKEN``) against it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Project, write_project
from tests.gitrepos import commit
from tests.web.conftest import API_CONFIG as CONFIG
from tests.web.conftest import AUTH, TOKEN, environ


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Live:
    project: Project
    process: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def wait_until(self, predicate: object, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            if callable(predicate) and predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out; server output:\n{self.output()}")

    def state(self, app: str, env: str) -> str | None:
        state: str | None = httpx.get(f"{self.url}/api/apps/{app}").json()["environments"][env]["state"]
        return state

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def start(
    root: Path, config: str = CONFIG, *, port: int | None = None, env: dict[str, str] | None = None, quiet: bool = False
) -> Live:
    """A ``conveyor serve`` of ``config`` on ``port`` (a free one by default), answering ``/healthz``;
    ``env`` adds to its environment (``CONVEYOR_DATABASE_URL`` for another database)."""
    project = write_project(root, config)
    port = port or free_port()
    script = shutil.which("conveyor", path=str(Path(sys.executable).parent))
    assert script, "the conveyor console script is not installed next to the interpreter"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    environment.update({k: v for k, v in environ("").items() if k != "CONVEYOR_DATABASE_URL"})
    environment.update(env or {})
    log = root / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [script, "serve", "-c", str(project.config), "--port", str(port), "--grace", "5"]
            + (["--quiet"] if quiet else []),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
        )
    live = Live(project, process, f"http://127.0.0.1:{port}", log)

    def healthy() -> bool:
        try:
            return httpx.get(f"{live.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        live.wait_until(healthy)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return live


def test_serve_deploys_what_the_api_releases_and_stops_on_sigterm(tmp_path: Path) -> None:
    live = start(tmp_path)
    try:
        assert f"listening on {live.url}" in live.output()
        released = httpx.post(f"{live.url}/api/apps/web/releases", headers={"Authorization": f"Bearer {TOKEN}"})
        assert released.status_code == 201, released.text
        live.wait_until(lambda: live.state("web", "production") == "succeeded")
        assert live.stop() == 0, live.output()
    finally:
        if live.process.poll() is None:
            live.process.kill()
            live.process.wait()
    output = live.output()
    assert "received SIGTERM" in output
    assert "Traceback" not in output


# -- the CLI's remote mode -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start(tmp_path_factory.mktemp("live"))
    yield server
    if server.process.poll() is None:
        server.stop()


def remote(live: Live, *args: str, token: str | None = TOKEN, **env: str | None) -> tuple[int, str, str]:
    environment: dict[str, str | None] = {"CONVEYOR_TOKEN": token, "CONVEYOR_URL": None, **env}
    result = live.project.run(*args, env=environment)
    return result.exit_code, result.stdout, result.stderr


def test_release_through_the_server_prints_what_the_local_command_prints(live: Live) -> None:
    commit(live.project.repo("web"), {"remote.txt": "1\n"}, "remote release")
    sha = live.project.head("web")
    code, out, err = remote(live, "release", "web", "--server", live.url)
    assert (code, err) == (0, "")
    # the first release of web on this server: both commits of the repository are new
    assert out.strip() == f"release {sha[:7]} of web ({sha[:12]}, 2 commit(s)) heads for integration"
    code, out, _ = remote(live, "release", "web", "--server", live.url)
    assert out.strip() == f"web {sha[:7]} ({sha[:12]}) is already a release; nothing new"
    history = httpx.get(f"{live.url}/api/apps/web/history").json()["deployments"]
    assert any(r["sha"] == sha and r["created_by"] == "api:ci" for r in history)


def test_conveyor_url_selects_the_server_too(live: Live) -> None:
    code, out, _ = remote(live, "release", "web", CONVEYOR_URL=live.url)
    assert code == 0
    assert f"web {live.project.head('web')[:7]}" in out


@pytest.mark.parametrize("token", [None, "", "not-the-token-0123456789"])
def test_without_a_valid_token_remote_commands_exit_1(live: Live, token: str | None) -> None:
    for args in (
        ["release", "web"],
        ["promote", "api"],
        ["unblock", "web", "--reason", "r"],
        ["dsn", "web", "--env", "staging"],
    ):
        code, out, err = remote(live, *args, "--server", live.url, token=token)
        assert code == 1, (args, out, err)
        assert err.startswith("error: unauthorized: set CONVEYOR_TOKEN"), err
        assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["release", "nope"], 2, "error: unknown app 'nope' (known: web, api)"),
        (["deploy", "web", "v9", "--to", "staging"], 1, "error: no release 'v9' of web (see: conveyor history web)"),
        (
            ["deploy", "web", "v9", "--to", "moon"],
            2,
            "error: unknown environment 'moon' (known: integration, staging, production)",
        ),
        (
            ["promote", "api", "--to", "integration"],
            1,
            "error: integration is the first environment; cut a release instead",
        ),
        (["unblock", "web", "--reason", "just in case"], 1, "error: web is not blocked"),
        (["release", "web", "--ref", "-x"], 1, "error: unknown ref '-x': a ref may not start with '-'"),
        (
            ["rollback", "web", "--env", "moon", "--reason", "r"],
            2,
            "error: unknown environment 'moon' (known: integration, staging, production)",
        ),
        (
            ["unveto", "web", "v9", "--env", "staging", "--reason", "r"],
            1,
            "error: no release 'v9' of web (see: conveyor history web)",
        ),
        (["cancel", "--deployment", "99999", "--reason", "r"], 1, "error: no deployment #99999"),
        (["dsn", "nope", "--env", "staging"], 2, "error: unknown app 'nope' (known: web, api)"),
        (
            ["dsn", "web", "--env", "moon"],
            2,
            "error: unknown environment 'moon' (known: integration, staging, production)",
        ),
    ],
)
def test_refusals_exit_as_the_local_command_would(live: Live, args: list[str], code: int, message: str) -> None:
    got, _, err = remote(live, *args, "--server", live.url)
    assert (got, err.splitlines()) == (code, [message])


def test_deploy_and_promote_through_the_server(live: Live) -> None:
    sha = live.project.head("api")
    code, out, _ = remote(live, "release", "api", "--server", live.url)
    assert code == 0, out
    live.wait_until(lambda: live.state("api", "staging") == "succeeded")
    code, out, _ = remote(live, "promote", "api", "--server", live.url)
    assert code == 0
    assert out.strip().endswith(f"of api {sha[:7]} to production queued (promoted)")
    live.wait_until(lambda: live.state("api", "production") == "succeeded")
    code, out, _ = remote(live, "deploy", "api", sha[:8], "--to", "staging", "--server", live.url)
    assert code == 0
    assert out.strip().endswith(f"of api {sha[:7]} to staging queued")  # the release's label, not the prefix


def test_logs_through_the_server_print_what_the_local_command_prints(live: Live) -> None:
    code, out, _ = remote(live, "release", "api", "--server", live.url)
    assert code == 0, out
    live.wait_until(lambda: live.state("api", "staging") == "succeeded")
    code, out, err = remote(live, "logs", "api", "--env", "staging", "--server", live.url)
    assert (code, err) == (0, "")
    assert out.startswith("deployment #") and " of api " in out and " to staging, queued by " in out
    assert "step deploy\n" in out and "  | " in out
    assert out.rstrip().splitlines()[-1].startswith("deployment #") and ": succeeded" in out
    local = live.project.run("logs", "api", "--env", "staging", env={"CONVEYOR_URL": None, **environ("")})
    assert local.stdout == out
    code, _, err = remote(live, "logs", "api", "--env", "nowhere", "--server", live.url)
    assert (code, err.strip()) == (2, "error: unknown environment 'nowhere' (known: integration, staging, production)")


def test_dsn_through_the_server_is_the_one_the_local_command_prints(live: Live) -> None:
    """Whoever hands an app its SENTRY_DSN needs the server and a token, not the database."""
    code, remote_dsn, err = remote(live, "dsn", "api", "--env", "production", "--server", live.url)
    assert (code, err) == (0, "")
    local = live.project.run("dsn", "api", "--env", "production")
    assert local.exit_code == 0, local.output
    assert remote_dsn.strip() == local.output.strip()
    assert remote_dsn.startswith("http://") and remote_dsn.strip().endswith("@127.0.0.1:8080/1")
    again = httpx.post(f"{live.url}/api/apps/api/dsn", json={"environment": "production"}, headers=AUTH)
    assert again.status_code == 200 and again.json() == {
        "app": "api",
        "environment": "production",
        "dsn": remote_dsn.strip(),
    }
    assert httpx.post(f"{live.url}/api/apps/api/dsn", json={"environment": "production"}).status_code == 401


def test_an_unreachable_server_is_exit_1(live: Live) -> None:
    code, _, err = remote(live, "release", "web", "--server", f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert err.startswith("error: cannot reach conveyor at http://127.0.0.1:")


def test_rollback_unveto_and_cancel_through_the_server(live: Live) -> None:
    def current(env: str) -> str | None:
        found: str | None = httpx.get(f"{live.url}/api/apps/web").json()["environments"][env]["current"]
        return found

    labels = []
    for n in (1, 2):
        commit(live.project.repo("web"), {"rollback.txt": f"{n}\n"}, f"rollback test {n}")
        code, out, err = remote(live, "release", "web", "--server", live.url)
        assert code == 0, err
        labels.append(out.split()[1])
        live.wait_until(lambda: current("production") == labels[-1])
    first, second = labels
    code, out, err = remote(live, "rollback", "web", "--env", "production", "--reason", "bad", "--server", live.url)
    assert (code, err) == (0, ""), err
    assert f"rolls web back to {first} in production; {second} is vetoed there" in out
    live.wait_until(lambda: current("production") == first)
    holds = httpx.get(f"{live.url}/api/apps/web").json()["holds"]
    assert [(h["kind"], h["release"], h["actor"]) for h in holds if h["kind"] == "veto"] == [("veto", second, "api:ci")]
    code, out, err = remote(
        live, "unveto", "web", second, "--env", "production", "--reason", "ok", "--server", live.url
    )
    assert (code, out.strip()) == (0, f"web {second} may go to production again"), err
    code, _, err = remote(live, "unveto", "web", second, "--env", "production", "--reason", "ok", "--server", live.url)
    assert (code, err.strip()) == (1, f"error: {second} of web is not vetoed in production")
    code, _, err = remote(live, "cancel", "web", "--env", "production", "--reason", "r", "--server", live.url)
    assert (code, err.strip()) == (1, "error: nothing to cancel: web has no queued or running deployment in production")
