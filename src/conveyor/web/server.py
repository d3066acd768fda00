"""Serving the API with uvicorn in the calling (main) thread, stopped by an event rather than by signals.

uvicorn normally installs its own SIGINT/SIGTERM handlers; here the CLI owns them (it must also stop the
conductor), so :class:`ApiServer` leaves signals alone and :func:`serve_http` watches ``until`` instead.
On ``until`` uvicorn stops accepting, lets requests in flight finish (up to ``grace`` seconds) and returns.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Generator

import uvicorn
from fastapi import FastAPI


class ApiServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_listening: Callable[[str], None]) -> None:
        super().__init__(config)
        self.on_listening = on_listening

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the caller's handlers stay in place

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.on_listening(self.url)

    @property
    def url(self) -> str:
        host, port = self.config.host, self.config.port
        for server in getattr(self, "servers", []):
            for sock in server.sockets:
                port = sock.getsockname()[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class CannotListen(RuntimeError):
    """The address is taken, not ours, or not an address; the message says which."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, so a taken port is one clear error before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP, and an
    # answer written in two parts would otherwise wait 40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CannotListen(f"cannot listen on {host}:{port}: {reason}") from exc
    sock.set_inheritable(True)
    return sock


def serve_http(
    app: FastAPI,
    sock: socket.socket,
    *,
    until: threading.Event,
    grace: float,
    on_listening: Callable[[str], None],
) -> None:
    """Serve ``app`` on the bound ``sock`` until ``until`` is set; returns after uvicorn's graceful shutdown."""
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # keep the CLI's logging setup
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=max(int(grace), 1),
    )
    server = ApiServer(config, on_listening)

    def exit_on_stop() -> None:
        until.wait()
        server.should_exit = True

    threading.Thread(target=exit_on_stop, name="http-stop", daemon=True).start()
    server.run(sockets=[sock])
