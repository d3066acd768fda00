"""Bodies are read only after the token is checked, and never past ``api.max_body_bytes``.

Against a real ``conveyor serve``: a 400 MB body, streamed from a socket (never built in memory), is
refused within a second whether it declares its length or comes chunked, and the server's resident memory
stays flat. In-process: the error each kind of unreadable body answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from conveyor.web.auth import TokenCheck
from conveyor.web.errors import install_error_handlers
from conveyor.web.gate import RequestGate, body_cap, route_caps
from tests.web.conftest import API_CONFIG, AUTH, TOKEN, Api, make_api
from tests.web.test_serve import Live, start

MIB = 1024 * 1024
HUGE = 400 * MIB


def rss_bytes(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (the peak so far) of a Linux process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def stream_post(url: str, path: str, total: int, *, token: str | None, chunked: bool) -> tuple[int, float, bytes]:
    """POST ``total`` bytes to ``path`` from one reused 1 MiB buffer, sending from a thread while the answer is
    read: (status, seconds until the status line arrived, the answer's bytes)."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    assert host and port
    sock = socket.create_connection((host, port))
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    if token:
        head.append(f"Authorization: Bearer {token}")
    block = b"x" * MIB

    def send_body() -> None:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            sent = 0
            while sent < total:
                piece = memoryview(block)[: min(len(block), total - sent)]
                if chunked:
                    sock.sendall(b"%x\r\n" % len(piece))
                sock.sendall(piece)
                if chunked:
                    sock.sendall(b"\r\n")
                sent += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            return  # the server closed the connection: what a refusal looks like from here

    started = time.monotonic()
    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    answer, answered_after = b"", None
    sock.settimeout(30)
    try:
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            if answered_after is None:
                answered_after = time.monotonic() - started
            answer += data
    finally:
        sock.close()
        sender.join(timeout=30)
    assert answered_after is not None, "no answer"
    return int(answer.split(b" ", 2)[1]), answered_after, answer


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start(tmp_path_factory.mktemp("bodies"))
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.mark.parametrize(
    ("token", "chunked", "status"),
    [(None, False, 401), (None, True, 401), (TOKEN, False, 413), (TOKEN, True, 413)],
    ids=["no-token-length", "no-token-chunked", "token-length", "token-chunked"],
)
def test_a_400_mb_body_is_refused_at_once_without_growing_the_server(
    live: Live, token: str | None, chunked: bool, status: int
) -> None:
    pid = live.process.pid
    before = rss_bytes(pid, "VmRSS")
    got, seconds, answer = stream_post(live.url, "/api/apps/web/unblock", HUGE, token=token, chunked=chunked)
    assert got == status, answer
    assert seconds < 1.0, f"answered after {seconds:.2f}s"
    grown = rss_bytes(pid, "VmHWM") - before
    assert grown < 50 * MIB, f"serve grew by {grown / MIB:.0f} MiB"
    assert b'"field":"body"' in answer or status == 401, answer
    # the server goes on answering
    got, _, answer = stream_post(live.url, "/api/apps/web/unblock", 30, token=TOKEN, chunked=chunked)
    assert got == 422, answer


# -- in-process: what each unreadable body answers --------------------------------------------------------


SMALL_CAP = API_CONFIG.replace("api:\n", "api:\n  max_body_bytes: 64\n")


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", SMALL_CAP)


def post(api: Api, content: bytes, content_type: str | None = "application/json") -> tuple[int, dict[str, str]]:
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    response = api.client.post("/api/apps/web/unblock", content=content, headers=headers)
    error: dict[str, str] = response.json()["error"]
    return response.status_code, error


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b'{"reason": "x",', "application/json", "body: invalid JSON: Expecting property name enclosed in double"),
        (b"[1, 2]", "application/json", "body: must be a JSON object, got an array"),
        (b'"reason"', "application/json", "body: must be a JSON object, got a string"),
        (b"null", "application/json", "body: must be a JSON object, got null"),
        (b"reason=x", "text/plain", "body: send a JSON object with Content-Type: application/json (got text/plain)"),
        (b'{"reason": "x"}', None, "body: send a JSON object with Content-Type: application/json (none was given)"),
    ],
)
def test_an_unreadable_body_is_named_body(api: Api, content: bytes, content_type: str | None, message: str) -> None:
    status, error = post(api, content, content_type)
    assert (status, error["code"], error["field"]) == (422, "invalid", "body")
    assert error["message"].startswith(message), error


def test_a_field_of_the_body_is_still_named_by_its_name(api: Api) -> None:
    status, error = post(api, b'{"reason": "r", "Extra": 1}')
    assert (status, error["field"]) == (422, "Extra")


def test_the_cap_is_configurable_and_counts_chunked_bodies_too(capped: Api) -> None:
    status, error = post(capped, b'{"reason": "' + b"r" * 60 + b'"}')
    assert (status, error["code"], error["field"]) == (413, "too_large", "body")
    assert "64 bytes" in error["message"]

    def chunks() -> Iterator[bytes]:
        yield b'{"reason": "'
        yield b"r" * 100
        yield b'"}'

    response = capped.client.post("/api/apps/web/unblock", content=chunks(), headers=AUTH)
    assert response.status_code == 413, response.text
    status, error = post(capped, b'{"reason": "fits"}')
    assert (status, error["code"]) == (409, "conflict")  # read, and refused for what it says: web is not blocked


def test_a_write_without_a_token_is_refused_before_its_body_is_read(api: Api) -> None:
    read: list[bytes] = []

    def body() -> Iterator[bytes]:
        read.append(b"{}")
        yield b"{}"

    response = api.client.post("/api/apps/web/unblock", content=body(), headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert read == []  # the test client sends the body lazily: nothing asked for it


def test_a_route_may_declare_its_own_cap() -> None:
    """``body_cap`` raises or lowers the cap for one route only; every other route keeps the configured one."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/hooks/big")
    @body_cap(4096)
    async def big(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    @app.post("/small")
    async def small(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    app.add_middleware(RequestGate, tokens=TokenCheck(()), writes=[], max_body_bytes=1024, caps=route_caps(app.routes))
    client = TestClient(app)
    assert client.post("/hooks/big", content=b"x" * 3000).json() == {"read": 3000}
    refused = client.post("/hooks/big", content=b"x" * 5000)
    assert refused.status_code == 413 and "4096 bytes" in refused.json()["error"]["message"]
    assert "on this endpoint" in refused.json()["error"]["message"]
    small_refused = client.post("/small", content=b"x" * 3000)
    assert small_refused.status_code == 413 and "api.max_body_bytes" in small_refused.json()["error"]["message"]
    chunked = client.post("/hooks/big", content=iter([b"x" * 3000, b"x" * 3000]))
    assert chunked.status_code == 413
