"""A webhook receiver on 127.0.0.1, as a user would write one: it records every request and checks its
signatures the way docs/notifications.md tells receivers to: the Standard Webhooks headers with the
``standardwebhooks`` library (which also refuses a timestamp more than 5 minutes off), and the legacy
``X-Conveyor-Signature``.

``mode`` says how it answers: ``ok`` (200), ``error`` (500) or ``slow`` (holds the request past any
sensible client timeout, then answers 200 to nobody). A receiver that is not started is a closed port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from standardwebhooks import Webhook, WebhookVerificationError

Mode = Literal["ok", "error", "slow"]


@dataclass(frozen=True)
class Received:
    delivery_id: str
    event_kind: str
    body: bytes
    payload: dict[str, Any]
    signature_ok: bool
    standard_error: str | None  # why the Standard Webhooks verification failed; None when it passed
    headers: dict[str, str]
    answered: int | None  # the status sent back; None when the request was held (slow mode)

    @property
    def accepted(self) -> bool:
        return self.answered is not None and 200 <= self.answered < 300


def signature_is_valid(body: bytes, header: str, secret: str) -> bool:
    """What a receiver does: recompute the HMAC of the raw body and compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def standard_secret(secret: str) -> str:
    """The ``whsec_`` secret a receiver's Standard Webhooks library takes for conveyor's ``secret``."""
    return secret if secret.startswith("whsec_") else "whsec_" + base64.b64encode(secret.encode()).decode()


def standard_error(body: bytes, headers: dict[str, str], secret: str) -> str | None:
    try:
        Webhook(standard_secret(secret)).verify(body, headers)
    except WebhookVerificationError as exc:
        return str(exc)
    return None


class Receiver:
    def __init__(self, port: int, secret: str, mode: Mode = "ok", hold_seconds: float = 5.0) -> None:
        self.port, self.secret, self.mode, self.hold_seconds = port, secret, mode, hold_seconds
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/conveyor"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                mode = receiver.mode
                status: int | None = {"ok": 200, "error": 500, "slow": None}[mode]
                receiver._record(self, body, status)
                if status is None:
                    receiver._closing.wait(receiver.hold_seconds)
                    status = 200
                reply = b"ok" if status == 200 else b"receiver is broken"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left: nothing to report

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="receiver", daemon=True)
        self._thread.start()
        return self

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes, status: int | None) -> None:
        headers = {k: v for k, v in handler.headers.items()}
        received = Received(
            delivery_id=headers.get("X-Conveyor-Delivery", ""),
            event_kind=headers.get("X-Conveyor-Event", ""),
            body=body,
            payload=json.loads(body),
            signature_ok=signature_is_valid(body, headers.get("X-Conveyor-Signature", ""), self.secret),
            standard_error=standard_error(body, headers, self.secret),
            headers=headers,
            answered=status,
        )
        with self._lock:
            self.requests.append(received)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def accepted(self) -> list[Received]:
        return [r for r in self.received() if r.accepted]

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None
