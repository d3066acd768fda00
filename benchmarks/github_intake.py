"""The GitHub intake against a real ``conveyor serve`` on SQLite.

- :func:`intake_latencies_ms`: signed ``push`` webhooks posted one at a time; per request, from sending
  it to its 2xx answer (the request verifies the signature and records the delivery; the conductor in the
  same process works on the deliveries meanwhile, as it would in production).
- :func:`intake_per_second`: signed webhooks posted by several clients at once: accepted per second.
- :func:`push_to_deploy_start_ms`: per commit, a ``push`` webhook then a green ``check_suite`` webhook,
  from sending the push to the deploy command's first act. The app's repository is served by
  ``git daemon`` on loopback, so the worker's mirror fetch crosses a real git protocol.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from engine import GIT_ENV

from conveyor.github.signature import sign

SECRET = "bench-webhook-secret-0123456789"
REPO = "bench/app"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, env=GIT_ENV, capture_output=True, text=True)
    return done.stdout.strip()


def _push(sha: str, before: str, n: int) -> dict[str, object]:
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": sha,
        "compare": f"https://github.com/{REPO}/compare/{before[:12]}...{sha[:12]}",
        "commits": [
            {
                "id": sha,
                "message": f"change {n} (#{n})",
                "author": {"name": "A User", "email": "user@example.org", "username": "a-user"},
                "added": [],
                "modified": ["app.py"],
                "removed": [],
            }
        ],
        "repository": {"full_name": REPO, "html_url": f"https://github.com/{REPO}"},
    }


def _suite(sha: str) -> dict[str, object]:
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


def _signed(event: str, payload: object, delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(SECRET, body),
        "Content-Type": "application/json",
    }


@contextmanager
def _serving(root: Path, repo_url: str, deploy_argv: str) -> Iterator[httpx.Client]:
    config = root / "conveyor.yaml"
    config.write_text(
        "\n".join(
            [
                "environments: [production]",
                "teams: {bench: {notify: []}}",
                'github: {webhook_secret: "${GITHUB_WEBHOOK_SECRET}"}',
                "defaults:",
                f"  deploy: {{driver: command, argv: {deploy_argv}}}",
                "  checks: []",
                "  ci: {required: [github-actions], timeout: 1h}",
                "apps:",
                f"  app: {{repo: '{repo_url}', github: {REPO}, team: bench}}",
            ]
        )
        + "\n"
    )
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_DATABASE_URL"}
    env["GITHUB_WEBHOOK_SECRET"] = SECRET
    server = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "serve", "-c", str(config), "--quiet", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("conveyor serve did not come up")
                time.sleep(0.1)
            yield client
    finally:
        server.terminate()
        server.wait(timeout=60)


def _repo(root: Path) -> tuple[Path, str]:
    repo = root / "repos" / "app"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    return repo, _git(repo, "rev-parse", "HEAD")


def intake_latencies_ms(count: int = 1000) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        root = Path(tmp)
        repo, first = _repo(root)
        with _serving(root, str(repo), '["true"]') as client:
            requests = [_signed("push", _push(f"{n:040x}", first, n), f"lat-{n}") for n in range(count)]
            latencies = []
            for body, headers in requests:
                sent = time.perf_counter()
                client.post("/hooks/github", content=body, headers=headers).raise_for_status()
                latencies.append((time.perf_counter() - sent) * 1000)
            return latencies


def intake_per_second(count: int = 2000, clients: int = 16) -> float:
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        root = Path(tmp)
        repo, first = _repo(root)
        with _serving(root, str(repo), '["true"]') as client:
            requests = [_signed("push", _push(f"{n:040x}", first, n), f"rate-{n}") for n in range(count)]
            base = str(client.base_url)
            local = threading.local()

            def post(request: tuple[bytes, dict[str, str]]) -> int:
                if not hasattr(local, "client"):
                    local.client = httpx.Client(base_url=base, timeout=60)
                return local.client.post("/hooks/github", content=request[0], headers=request[1]).status_code

            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(post, requests[:clients]))  # connections open before the clock starts
                started = time.perf_counter()
                answers = list(pool.map(post, requests[clients:]))
                elapsed = time.perf_counter() - started
            if any(status // 100 != 2 for status in answers):
                raise RuntimeError("a webhook was refused")
            return len(answers) / elapsed


@contextmanager
def _git_daemon(base: Path) -> Iterator[int]:
    port = _free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--reuseaddr",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def push_to_deploy_start_ms(commits: int = 100) -> list[float]:
    if shutil.which("git") is None:
        raise RuntimeError("git is needed")
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        root = Path(tmp)
        repo, before = _repo(root)
        starts = root / "starts.txt"
        record = f'printf \'%s %s\\n\' "$(date +%s.%N)" "$CONVEYOR_SHA" >> {starts}'
        with _git_daemon(root / "repos") as port:
            argv = json.dumps(["sh", "-c", record])
            with _serving(root, f"git://127.0.0.1:{port}/app", argv) as client:
                delays = []
                for n in range(commits):
                    _git(repo, "commit", "-q", "--allow-empty", "-m", f"change {n} (#{n})")
                    sha = _git(repo, "rev-parse", "HEAD")
                    push = _signed("push", _push(sha, before, n), f"push-{n}")
                    suite = _signed("check_suite", _suite(sha), f"suite-{n}")
                    sent = time.time()
                    client.post("/hooks/github", content=push[0], headers=push[1]).raise_for_status()
                    client.post("/hooks/github", content=suite[0], headers=suite[1]).raise_for_status()
                    deadline = time.monotonic() + 60
                    while (started := _started(starts, sha)) is None:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"the deploy of {sha[:7]} never started")
                        time.sleep(0.002)
                    delays.append((started - sent) * 1000)
                    before = sha
                return delays


def _started(starts: Path, sha: str) -> float | None:
    if not starts.exists():
        return None
    for line in starts.read_text().splitlines():
        stamp, _, started_sha = line.partition(" ")
        if started_sha == sha:
            return float(stamp)
    return None
