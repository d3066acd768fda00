"""Real Prometheus and Alertmanager for tests, on free loopback ports with their own config and data dirs.

- :class:`TrafficApp`: a tiny HTTP server whose ``/metrics`` serves ``http_requests_total`` counters
  for the (app, env, version) given to :meth:`TrafficApp.serve`, growing with time at a set rate and
  error ratio, so ``rate()`` over them is what the test chose.
- :func:`start_prometheus`: Debian's ``prometheus`` scraping that app every second.
- :func:`start_alertmanager`: Debian's ``prometheus-alertmanager``, clustering off, grouping and
  resolving in about a second; optionally with a webhook receiver and its ``http_config``.

Each waits for ``/-/ready`` and is killed at teardown (the fixtures are session- or module-scoped:
starting them takes a second or two).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.tools import require_tool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Traffic:
    rps: float
    error_ratio: float
    since: float = field(default_factory=time.monotonic)

    def counts(self) -> tuple[float, float]:
        total = self.rps * (time.monotonic() - self.since)
        return total * (1 - self.error_ratio), total * self.error_ratio


@dataclass
class TrafficApp:
    """``/metrics`` with ``http_requests_total{app,env,version,code}`` for each served release."""

    url: str = ""
    traffic: dict[tuple[str, str, str], Traffic] = field(default_factory=dict)

    def serve(self, app: str, env: str, version: str, *, rps: float, error_ratio: float) -> None:
        self.traffic[(app, env, version)] = Traffic(rps, error_ratio)

    def exposition(self) -> str:
        lines = ["# TYPE http_requests_total counter"]
        for (app, env, version), traffic in sorted(self.traffic.items()):
            ok, errors = traffic.counts()
            for code, value in (("200", ok), ("500", errors)):
                labels = f'app="{app}",env="{env}",version="{version}",code="{code}"'
                lines.append(f"http_requests_total{{{labels}}} {value:.3f}")
        return "\n".join(lines) + "\n"


@contextmanager
def traffic_app() -> Iterator[TrafficApp]:
    metrics = TrafficApp()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = metrics.exposition().encode()
            self.send_response(200 if self.path.startswith("/metrics") else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    metrics.url = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield metrics
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Program:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        return self.output()[-4000:]


@contextmanager
def running(argv: list[str], url: str, log: Path) -> Iterator[Program]:
    """Start ``argv`` (output to ``log``), wait for ``url``/-/ready, kill it at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    program = Program(url, process, log)
    try:
        wait_for(lambda: _ready(program), timeout=30, what=f"{argv[0]} to be ready", program=program)
        yield program
    finally:
        process.kill()
        process.wait(timeout=10)


def _ready(program: Program) -> bool:
    assert program.process.poll() is None, f"exited {program.process.returncode}:\n{program.tail()}"
    try:
        return httpx.get(f"{program.url}/-/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30, what: str = "a condition", program: Program | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    detail = f"\n{program.tail()}" if program else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")


@contextmanager
def start_prometheus(root: Path, target: str) -> Iterator[Program]:
    """Prometheus scraping ``target`` (host:port) every second."""
    binary = require_tool("prometheus")
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "traffic", "static_configs": [{"targets": [target]}]}],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        binary,
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(argv, f"http://127.0.0.1:{port}", root / "prometheus.log") as program:
        yield program


def query(prometheus: Program, promql: str) -> list[Any]:
    body = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    result: list[Any] = body["data"]["result"]
    return result


@contextmanager
def start_alertmanager(root: Path, receiver: dict[str, Any] | None = None) -> Iterator[Program]:
    """Alertmanager with clustering off, every alert its own group, notified within about a second.

    ``receiver`` (a webhook_configs entry, e.g. ``{"url": ..., "http_config": ...}``) gets every
    notification, resolved ones included; without it alerts go nowhere."""
    binary = require_tool("prometheus-alertmanager")
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"resolve_timeout": "5s"},
        "route": {
            "receiver": "conveyor" if receiver else "nowhere",
            "group_by": ["..."],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "2s",
        },
        "receivers": [
            {"name": "conveyor", "webhook_configs": [{**receiver, "send_resolved": True}]}
            if receiver
            else {"name": "nowhere"}
        ],
    }
    (root / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        binary,
        f"--config.file={root / 'alertmanager.yml'}",
        f"--storage.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=debug",  # "Notify success" lines show each notification sent
    ]
    with running(argv, f"http://127.0.0.1:{port}", root / "alertmanager.log") as program:
        yield program


def post_alert(
    alertmanager: Program,
    labels: dict[str, str],
    summary: str = "",
    *,
    resolved: bool = False,
    starts_at: datetime | None = None,
) -> None:
    """Send one alert as Prometheus would (``POST /api/v2/alerts``); ``resolved`` ends it now."""
    now = datetime.now(UTC)
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": summary} if summary else {},
        "startsAt": (starts_at or now - timedelta(minutes=1)).isoformat(),
        "endsAt": (now - timedelta(seconds=1) if resolved else now + timedelta(hours=1)).isoformat(),
        "generatorURL": "http://prometheus.example/graph",
    }
    response = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=[alert], timeout=5)
    assert response.status_code == 200, response.text


def silence(alertmanager: Program, name: str, value: str) -> str:
    """Silence every alert with label ``name`` = ``value`` for an hour; the silence's id."""
    now = datetime.now(UTC)
    body = {
        "matchers": [{"name": name, "value": value, "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "conveyor tests",
        "comment": "known noise",
    }
    response = httpx.post(f"{alertmanager.url}/api/v2/silences", json=body, timeout=5)
    assert response.status_code == 200, response.text
    silence_id: str = response.json()["silenceID"]
    return silence_id
