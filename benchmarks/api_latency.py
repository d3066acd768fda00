"""From ``POST /api/apps/{app}/releases`` returning to the first deploy command starting.

A real ``conveyor serve`` process; the deploy is the ``command`` driver appending a timestamp to a file
as its very first act. Releases are posted one at a time, each after the previous one's deploy started,
so the figure is the engine's reaction time, not queueing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from engine import GIT_ENV

TOKEN = "bench-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(root: Path, apps: int, starts: Path) -> Path:
    repo = root / "repos" / "app"
    repo.mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=GIT_ENV, capture_output=True)
    record = f'printf "%s %s\\n" "$(date +%s.%N)" "$CONVEYOR_APP" >> {starts}'
    lines = [
        "environments: [production]",
        "teams: {bench: {notify: []}}",
        f"api: {{tokens: [{{name: bench, token: {TOKEN}}}]}}",
        "defaults:",
        f"  deploy: {{driver: command, argv: [sh, -c, '{record}']}}",
        "  checks: []",
        "apps:",
    ]
    lines += [f"  app{i:03d}: {{repo: ./repos/app, team: bench}}" for i in range(apps)]
    path = root / "conveyor.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _started(starts: Path, app: str) -> float | None:
    if not starts.exists():
        return None
    for line in starts.read_text().splitlines():
        stamp, name = line.split()
        if name == app:
            return float(stamp)
    return None


def release_to_start_ms(releases: int = 200) -> tuple[list[float], list[float]]:
    """Per release: (ms from the POST returning, ms from the POST being sent) to its deploy starting.
    The first is negative when the deploy began before the response reached the client."""
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        root = Path(tmp)
        starts = root / "starts.txt"
        config = _config(root, releases, starts)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_DATABASE_URL"}
        server = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "serve", "-c", str(config), "--quiet", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        from_return: list[float] = []
        from_send: list[float] = []
        try:
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as client:
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
                for i in range(releases):
                    app = f"app{i:03d}"
                    sent = time.time()
                    response = client.post(f"/api/apps/{app}/releases", json={}, timeout=60)
                    returned = time.time()
                    response.raise_for_status()
                    deadline = time.monotonic() + 30
                    while (started := _started(starts, app)) is None:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"the deploy of {app} never started")
                        time.sleep(0.002)
                    from_return.append((started - returned) * 1000)
                    from_send.append((started - sent) * 1000)
        finally:
            server.terminate()
            server.wait(timeout=60)
        return from_return, from_send


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
