"""The ``local`` driver against a real git repository and real processes.

A module-scoped fixture builds a repository with two commits of a tiny stdlib HTTP app (``app.py`` serves
``/health`` with its version, reading ``PORT``) and a bare mirror of it, which is what conveyor hands
drivers as ``request.repo``. Every test tears down what it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.drivers.base import DeployRequest, DeployResult, Driver
from conveyor.drivers.local import LocalDriver, LocalOptions, read_record, stop_all
from conveyor.drivers.process import process_identity
from tests.contract.driver_contract import DriverContract, make_request, new_context

APP = """\
import http.server, os

VERSION = {version!r}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{{VERSION}} {{os.environ.get('CONVEYOR_VERSION', '')}}".encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


print("app", VERSION, "listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
SLOW_START = "import time; print('warming up', flush=True); time.sleep(60)"


@dataclass(frozen=True)
class Repo:
    mirror: Path
    v1: str
    v2: str


def git(*args: str, cwd: Path | None = None) -> str:
    config = ["-c", "user.name=conveyor-test", "-c", "user.email=test@example.invalid"]
    config += ["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
    out = subprocess.run(["git", *config, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    root = tmp_path_factory.mktemp("app-repo")
    work = root / "work"
    git("init", "-q", str(work))
    shas = []
    for version in ("v1", "v2"):
        (work / "app.py").write_text(APP.format(version=version))
        git("add", "app.py", cwd=work)
        git("commit", "-q", "-m", f"app {version}", cwd=work)
        shas.append(git("rev-parse", "HEAD", cwd=work))
    git("clone", "-q", "--mirror", str(work), str(root / "mirror.git"))
    return Repo(root / "mirror.git", shas[0], shas[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state" / "shop" / "staging"
    yield state
    stop_all(tmp_path)


@pytest.fixture
def deploy_request(repo: Repo, state_dir: Path, port: int) -> Any:
    def build(sha: str | None = None, version: str = "v1", **options: Any) -> DeployRequest:
        opts = {"start": [sys.executable, "app.py"], "ready_path": "/health", "ready_timeout": 15.0} | options
        return make_request(
            LocalOptions(**opts),
            state_dir,
            sha=sha or repo.v1,
            version=version,
            repo=str(repo.mirror),
            vars={"port": str(port)},
        )

    return build


def get(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/health", trust_env=False).text


class TestLocalDriverContract(DriverContract):
    __test__ = True
    log_marker = "warming up"

    @pytest.fixture
    def driver(self) -> Driver:
        return LocalDriver()

    @pytest.fixture
    def succeeding_request(self, deploy_request: Any) -> DeployRequest:
        request: DeployRequest = deploy_request()
        return request

    @pytest.fixture
    def failing_request(self, deploy_request: Any) -> DeployRequest:
        request: DeployRequest = deploy_request(start=[sys.executable, "-c", "raise SystemExit('boom')"])
        return request

    @pytest.fixture
    def long_request(self, deploy_request: Any) -> DeployRequest:
        request: DeployRequest = deploy_request(start=[sys.executable, "-c", SLOW_START], ready_timeout=60)
        return request

    @pytest.fixture
    def timing_out_request(self, deploy_request: Any) -> DeployRequest:
        request: DeployRequest = deploy_request(start=[sys.executable, "-c", SLOW_START], ready_timeout=1)
        return request

    def same_deployment(self, first: DeployResult, second: DeployResult) -> None:
        assert first.details["pid"] == second.details["pid"]
        assert second.message == "already running v1"


def test_deploy_serves_the_release_and_records_it(deploy_request: Any, port: int, state_dir: Path) -> None:
    request = deploy_request()
    result = LocalDriver().deploy(request, new_context()[0])
    assert result.ok, result.message
    assert get(port) == "v1 v1"
    record = json.loads((state_dir / "current.json").read_text())
    assert {"pid", "sha", "version", "port", "started_at", "log"} <= record.keys()
    assert (record["sha"], record["version"], record["port"]) == (request.sha, "v1", port)
    assert Path(record["log"]) == state_dir / "logs" / "v1-1.log"
    assert "app v1 listening" in Path(record["log"]).read_text()
    assert (state_dir / "checkouts" / request.sha / "app.py").is_file()


def test_a_new_version_replaces_the_old_on_the_same_port(deploy_request: Any, repo: Repo, port: int) -> None:
    driver = LocalDriver()
    first = driver.deploy(deploy_request(), new_context()[0])
    second = driver.deploy(deploy_request(sha=repo.v2, version="v2"), new_context()[0])
    assert first.ok and second.ok, second.message
    assert get(port) == "v2 v2"
    assert second.details["pid"] != first.details["pid"]
    assert process_identity(first.details["pid"]) is None


def test_a_new_version_that_fails_leaves_nothing_running(
    deploy_request: Any, repo: Repo, port: int, state_dir: Path
) -> None:
    driver = LocalDriver()
    assert driver.deploy(deploy_request(), new_context()[0]).ok
    broken = [
        sys.executable,
        "-c",
        "import sys; print('cannot start: bad config', file=sys.stderr); sys.exit(4)",
    ]
    ctx, log = new_context()
    result = driver.deploy(deploy_request(sha=repo.v2, version="v2", start=broken), ctx)
    assert not result.ok
    assert "exited before becoming ready" in result.message
    assert "cannot start: bad config" in log.text
    assert "cannot start: bad config" in result.details["log_tail"]
    assert read_record(state_dir) is None
    with pytest.raises(httpx.ConnectError):
        get(port)


def test_a_same_sha_process_that_stopped_answering_is_restarted(
    deploy_request: Any, port: int, state_dir: Path
) -> None:
    driver = LocalDriver()
    first = driver.deploy(deploy_request(), new_context()[0])
    os.kill(first.details["pid"], signal.SIGSTOP)  # alive, holding the port, not answering
    try:
        second = driver.deploy(deploy_request(ready_timeout=10, stop_timeout=0.5), new_context()[0])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(first.details["pid"], signal.SIGCONT)
    assert second.ok, second.message
    assert second.details["pid"] != first.details["pid"]
    assert get(port) == "v1 v1"
    assert process_identity(first.details["pid"]) is None


def test_checkout_is_reused(deploy_request: Any) -> None:
    driver = LocalDriver()
    assert driver.deploy(deploy_request(), new_context()[0]).ok
    driver.teardown("shop", "staging", deploy_request().state_dir, new_context()[0])
    ctx, log = new_context()
    assert driver.deploy(deploy_request(), ctx).ok
    assert "reusing checkout" in log.text


def test_missing_port_var_is_a_clear_failure(deploy_request: Any) -> None:
    request = deploy_request()
    request = make_request(request.options, request.state_dir, repo=request.repo, sha=request.sha, vars={})
    result = LocalDriver().deploy(request, new_context()[0])
    assert not result.ok
    assert "needs a 'port' var" in result.message


@pytest.mark.parametrize("sha", ["--upload-pack=touch pwned", "HEAD", "0123abc", "g" * 40])
def test_only_full_hex_shas_reach_git(deploy_request: Any, sha: str, tmp_path: Path) -> None:
    result = LocalDriver().deploy(deploy_request(sha=sha), new_context()[0])
    assert not result.ok
    assert "not a full commit SHA" in result.message
    assert not (tmp_path / "pwned").exists()


def test_unknown_sha_fails_without_raising(deploy_request: Any) -> None:
    result = LocalDriver().deploy(deploy_request(sha="f" * 40), new_context()[0])
    assert not result.ok
    assert "git checkout failed" in result.message


def test_missing_start_executable_is_a_clear_failure(deploy_request: Any) -> None:
    result = LocalDriver().deploy(deploy_request(start=["conveyor-no-such-server"]), new_context()[0])
    assert not result.ok
    assert result.message == "executable not found: conveyor-no-such-server"


def test_a_port_held_by_someone_else_is_not_mistaken_for_ready(deploy_request: Any, port: int) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = LocalDriver().deploy(deploy_request(stop_timeout=0), new_context()[0])
    assert not result.ok
    assert f"port {port} is in use" in result.message


def test_teardown_stops_the_process(deploy_request: Any, state_dir: Path, port: int) -> None:
    driver = LocalDriver()
    pid = driver.deploy(deploy_request(), new_context()[0]).details["pid"]
    result = driver.teardown("shop", "staging", state_dir, new_context()[0])
    assert result.ok and result.message == "stopped v1"
    assert process_identity(pid) is None
    assert not (state_dir / "current.json").exists()


def test_a_recycled_pid_is_never_signalled(state_dir: Path) -> None:
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        record = {
            "pid": bystander.pid,
            "identity": "proc:1",  # not the bystander's start time
            "sha": "0" * 40,
            "version": "v0",
            "port": 1,
            "started_at": "2020-01-01T00:00:00+00:00",
            "log": "x.log",
        }
        state_dir.mkdir(parents=True)
        (state_dir / "current.json").write_text(json.dumps(record))
        assert LocalDriver().teardown("shop", "staging", state_dir, new_context()[0]).ok
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_all_stops_every_recorded_process(repo: Repo, tmp_path: Path) -> None:
    driver = LocalDriver()
    pids = []
    for environment in ("integration", "staging"):
        state = tmp_path / "all" / "shop" / environment
        options = LocalOptions(start=[sys.executable, "app.py"], ready_path="/health")
        request = make_request(
            options,
            state,
            sha=repo.v1,
            repo=str(repo.mirror),
            environment=environment,
            vars={"port": str(free_port())},
        )
        result = driver.deploy(request, new_context()[0])
        assert result.ok, result.message
        pids.append(result.details["pid"])
    assert stop_all(tmp_path / "all") == 2
    assert all(process_identity(pid) is None for pid in pids)
    assert stop_all(tmp_path / "all") == 0
