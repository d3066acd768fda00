"""The socket ``serve`` listens on: asyncio turns Nagle's algorithm off on the connections it accepts.

asyncio sets ``TCP_NODELAY`` only on sockets whose protocol number says TCP; a socket made with proto 0
(the default) kept Nagle on, so an answer written in two parts (headers, then body) waited for the
client's delayed ACK: 40 ms on every API request and webhook.
"""

from __future__ import annotations

import asyncio
import socket

from conveyor.web.server import listen


def test_accepted_connections_have_nagle_turned_off() -> None:
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    if sock.proto != socket.IPPROTO_TCP:
        sock.close()
        raise AssertionError(f"the listening socket's proto is {sock.proto}, not TCP")

    async def accept_one() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                raw = transport.get_extra_info("socket")
                accepted.set_result(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            nodelay = await asyncio.wait_for(accepted, 10)
            writer.close()
            return nodelay

    assert asyncio.run(accept_one()) != 0
