"""The ``http`` check against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.http import HttpCheck, HttpOptions
from conveyor.steps import StepContext
from tests.contract.check_contract import CheckContract, make_request

ROUTES = {"/ok": (200, b"ok: all healthy"), "/slow": (200, b"slow but ok"), "/missing": (404, b"not here")}


class Handler(BaseHTTPRequestHandler):
    seen_headers: dict[str, str] = {}

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        Handler.seen_headers = dict(self.headers.items())
        path = self.path.split("?")[0]
        if path == "/slow":
            time.sleep(1.0)
        status, body = ROUTES.get(path, (500, b"boom"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and went away is expected here


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ok"


def request_for(tmp_path: Path, **options: Any) -> CheckRequest:
    return make_request(HttpOptions(**options), tmp_path)


class TestHttpCheckContract(CheckContract):
    __test__ = True
    cancel_gives_error = False  # one request can't be interrupted; it is bounded by its timeout

    @pytest.fixture
    def check(self) -> Check:
        return HttpCheck()

    @pytest.fixture
    def passing_request(self, base_url: str, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, url=f"{base_url}/ok")

    @pytest.fixture
    def failing_request(self, base_url: str, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, url=f"{base_url}/bad")

    @pytest.fixture
    def broken_request(self, refused_url: str, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, url=refused_url)

    @pytest.fixture
    def slow_request(self, base_url: str, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, url=f"{base_url}/slow", timeout=3)


def measure(tmp_path: Path, **options: Any) -> Any:
    return HttpCheck().measure(request_for(tmp_path, **options), StepContext())


def test_pass_message_and_value(base_url: str, tmp_path: Path) -> None:
    m = measure(tmp_path, url=f"{base_url}/ok")
    assert (m.phase, m.message, m.value) == ("pass", f"HTTP 200 from {base_url}/ok", "200")


def test_wrong_status_fails_naming_status_and_url(base_url: str, tmp_path: Path) -> None:
    m = measure(tmp_path, url=f"{base_url}/bad")
    assert m.phase == "fail"
    assert m.message.startswith(f"HTTP 500 from {base_url}/bad")
    assert m.value == "500"


def test_expected_non_200_status_passes(base_url: str, tmp_path: Path) -> None:
    assert measure(tmp_path, url=f"{base_url}/missing", expect_status=404).phase == "pass"


def test_body_substring(base_url: str, tmp_path: Path) -> None:
    assert measure(tmp_path, url=f"{base_url}/ok", expect_body="healthy").phase == "pass"
    m = measure(tmp_path, url=f"{base_url}/ok", expect_body="version 2")
    assert m.phase == "fail"
    assert "version 2" in m.message


def test_head_request(base_url: str, tmp_path: Path) -> None:
    assert measure(tmp_path, url=f"{base_url}/ok", method="HEAD").phase == "pass"


def test_headers_are_sent(base_url: str, tmp_path: Path) -> None:
    measure(tmp_path, url=f"{base_url}/ok", headers={"X-Probe": "conveyor"})
    assert Handler.seen_headers.get("X-Probe") == "conveyor"


def test_refused_connection_is_an_error_naming_the_url(refused_url: str, tmp_path: Path) -> None:
    m = measure(tmp_path, url=refused_url)
    assert m.phase == "error"
    assert refused_url in m.message
    assert m.value is None


def test_timeout_is_an_error(base_url: str, tmp_path: Path) -> None:
    m = measure(tmp_path, url=f"{base_url}/slow", timeout=0.2)
    assert m.phase == "error"
    assert "timed out" in m.message


@pytest.mark.parametrize(
    "options",
    [
        {"url": "ftp://example.org/"},
        {"url": "http://x/", "method": "POST"},
        {"url": "http://x/", "method": "HEAD", "expect_body": "x"},
        {"url": "http://x/", "timeout": 0},
        {"url": "http://x/", "expect_status": 42},
        {"url": "http://x/", "headers": {"X-Token": "caf\u00e9"}},
        {"url": "http://x/", "headers": {"X-Token": "a\r\nX-Injected: 1"}},
        {},
    ],
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HttpOptions.model_validate(options)


def test_defaults() -> None:
    opts = HttpOptions(url="http://x/")
    assert (opts.expect_status, opts.expect_body, opts.timeout, opts.method, opts.headers) == (
        200,
        None,
        5,
        "GET",
        {},
    )
