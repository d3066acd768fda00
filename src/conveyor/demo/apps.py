"""The demo's apps: small HTTP services (standard library only) committed to real git repositories.

Each answers ``/`` with its name, version and environment, and ``/health`` with 200, except that a
version written with ``broken_in="staging"`` answers 500 when ``CONVEYOR_ENV`` says staging: a bug that
only shows in one environment, as real ones do.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

APP_SOURCE = '''\
"""{name}: a tiny service deployed by the conveyor demo."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = {name!r}
VERSION = {version!r}
BROKEN_IN = {broken_in!r}  # the environment where /health fails, if any


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        env = os.environ.get("CONVEYOR_ENV", "")
        if self.path == "/health":
            healthy = env != BROKEN_IN
            self._answer(200 if healthy else 500, {{"healthy": healthy}})
        else:
            self._answer(200, {{"app": NAME, "version": VERSION, "environment": env}})

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "conveyor demo",
    "GIT_AUTHOR_EMAIL": "demo@conveyor.invalid",
    "GIT_COMMITTER_NAME": "conveyor demo",
    "GIT_COMMITTER_EMAIL": "demo@conveyor.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, **GIT_IDENTITY}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env, timeout=60)


def write_version(repo: Path, name: str, version: str, message: str, broken_in: str = "") -> None:
    """Commit a new version of the app to its repository (created on first use)."""
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        _git(repo, "init", "-q", "-b", "main")
    source = APP_SOURCE.format(name=name, version=version, broken_in=broken_in)
    (repo / "app.py").write_text(source)
    _git(repo, "add", "app.py")
    _git(repo, "commit", "-q", "-m", message)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (bound once to port 0 and released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
