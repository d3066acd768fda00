"""The error intake under load: gzip envelopes in the sentry-sdk's format posted to one ``conveyor serve``.

- ``error_intake_per_s``: envelopes accepted (200) per second over a few seconds, from 64 keep-alive
  connections of a raw asyncio HTTP client in this process (httpx would be the bottleneck, not the server);
  each envelope carries one error event with a stack trace, one of 20 issues.
- ``error_intake_p99_ms``: one envelope at a time on one connection, from sending to the answer (which
  comes after its event is committed), p99 over 500.

The envelopes are built by sentry-sdk itself (its Event, Envelope and gzip, as its transport sends them).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from api_latency import _free_port, p99
from engine import GIT_ENV

CONNECTIONS = 64


def _envelopes(count: int = 20) -> list[bytes]:
    """gzip envelopes exactly as sentry-sdk's HTTP transport sends them (its client builds each event: stack
    trace with locals and source context, contexts, modules, breadcrumbs), one error each, ``count`` issues."""
    import sentry_sdk
    from sentry_sdk.envelope import Envelope
    from sentry_sdk.transport import Transport

    captured: list[Envelope] = []

    class Capture(Transport):
        def capture_envelope(self, envelope: Envelope) -> None:
            captured.append(envelope)

    sentry_sdk.init(
        dsn="http://key@127.0.0.1/1",
        transport=Capture,
        release="v1",
        environment="production",
        default_integrations=False,  # patch nothing in this process (httpx, asyncio)
    )
    for n in range(count):
        sentry_sdk.add_breadcrumb(category="checkout", message=f"order {n} looked up")
        try:
            _fail(n)
        except LookupError:
            sentry_sdk.capture_exception()
    sentry_sdk.flush()
    sentry_sdk.get_client().close()
    bodies = []
    for envelope in captured:
        raw = io.BytesIO()
        with gzip.GzipFile(fileobj=raw, mode="w", compresslevel=9) as gz:  # the transport's default for gzip
            envelope.serialize_into(gz)
        bodies.append(raw.getvalue())
    return bodies


def _fail(n: int) -> None:
    order = {"id": n, "items": ["book", "lamp"], "total": 42.5}
    handlers = [_missing_order, _missing_customer, _missing_stock, _missing_price]
    handlers[n % len(handlers)](order, depth=n // len(handlers))


def _missing_order(order: dict[str, object], depth: int) -> None:
    if depth:
        _missing_order(order, depth - 1)
    raise LookupError(f"order {order['id']} not found")


def _missing_customer(order: dict[str, object], depth: int) -> None:
    if depth:
        _missing_customer(order, depth - 1)
    raise KeyError(f"customer of {order['id']}")


def _missing_stock(order: dict[str, object], depth: int) -> None:
    if depth:
        _missing_stock(order, depth - 1)
    raise IndexError(f"no stock for {order['items']}")


def _missing_price(order: dict[str, object], depth: int) -> None:
    if depth:
        _missing_price(order, depth - 1)
    raise LookupError(f"no price for {order['total']}")


def _request(path: str, key: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-sentry-envelope\r\n"
        f"Content-Encoding: gzip\r\nX-Sentry-Auth: Sentry sentry_key={key}, sentry_version=7, "
        f"sentry_client=sentry.python/2.75.0\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _load(port: int, requests: list[bytes], seconds: float) -> tuple[int, int]:
    accepted = refused = 0
    stop = time.monotonic() + seconds

    async def connection(offset: int) -> None:
        nonlocal accepted, refused
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = offset
        while time.monotonic() < stop:
            writer.write(requests[n % len(requests)])
            n += 1
            if await _answer(reader) == 200:
                accepted += 1
            else:
                refused += 1
        writer.close()

    await asyncio.gather(*(connection(i) for i in range(CONNECTIONS)))
    return accepted, refused


async def _latencies(port: int, requests: list[bytes], count: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for n in range(count):
        started = time.perf_counter()
        writer.write(requests[n % len(requests)])
        assert await _answer(reader) == 200
        times.append((time.perf_counter() - started) * 1000)
    writer.close()
    return times


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def error_intake(seconds: float = 5.0, samples: int = 500) -> tuple[float, float, float]:
    """(envelopes accepted per second, per second of the server's CPU time, p99 ms of one envelope) against
    a fresh ``conveyor serve`` on SQLite."""
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-errors-"))
    port = _free_port()
    repo = root / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=GIT_ENV, capture_output=True)
    (root / "conveyor.yaml").write_text(
        f"public_url: http://127.0.0.1:{port}\n"
        "teams: {bench: {notify: []}}\n"
        "apps: {shop: {repo: ./repo, team: bench, deploy: {driver: fake}}}\n"
        "errors: {rate_limit: {envelopes: 100000000, per: 1m}}\n"
    )
    conveyor = str(Path(sys.executable).parent / "conveyor")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    config = ["-c", str(root / "conveyor.yaml")]
    dsn = subprocess.run(
        [conveyor, "dsn", "shop", "--env", "production", *config], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()
    key, project = dsn.split("//")[1].split("@")[0], dsn.rsplit("/", 1)[1]
    requests = [_request(f"/api/{project}/envelope/", key, body) for body in _envelopes()]
    server = subprocess.Popen(
        [conveyor, "serve", *config, "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("conveyor serve did not start")
            time.sleep(0.1)
        asyncio.run(_load(port, requests, 1.0))  # warm up
        cpu = _cpu_seconds(server.pid)
        accepted, refused = asyncio.run(_load(port, requests, seconds))
        cpu = _cpu_seconds(server.pid) - cpu
        assert refused == 0, f"{refused} envelopes refused"
        latencies = asyncio.run(_latencies(port, requests, samples))
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)
    return accepted / seconds, accepted / cpu, p99(latencies)


if __name__ == "__main__":
    per_second, per_cpu_second, p99_ms = error_intake()
    print(f"error_intake_per_s: {per_second:.0f}\nerror_intake_per_cpu_s: {per_cpu_second:.0f}")
    print(f"error_intake_p99_ms: {p99_ms:.2f}")
