"""Reading a server over HTTP from a check: request headers as an option, and every failure as one line.

The ``http`` check probes the app itself; ``prometheus`` and ``alertmanager`` read a monitoring server.
They share what a request's options may hold (:data:`RequestHeaders`: printable ASCII on one line, so
nothing a config holds can split a header) and, for a monitoring server, how a GET that gets no answer is
told (:func:`get`, raising :class:`Unreachable` with a sentence the measurement carries).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

import httpx
from pydantic import AfterValidator, Field


def _one_line_ascii(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not (name + value).isascii() or any(c in name + value for c in "\r\n\x00"):
            raise ValueError(f"header {name!r} must be printable ASCII on one line")
    return headers


RequestHeaders = Annotated[dict[str, str], AfterValidator(_one_line_ascii), Field(default_factory=dict)]

Params = Sequence[tuple[str, str]]  # repeatable: Alertmanager takes one filter= per matcher


class Unreachable(Exception):
    """The server gave no answer (timeout, refused connection, a bad address); the message says which."""


def get(address: str, path: str, params: Params, headers: Mapping[str, str], timeout: float) -> httpx.Response:
    """``GET address+path``; any answer is returned, whatever its status; no answer is :class:`Unreachable`."""
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            query = httpx.QueryParams([(name, value) for name, value in params])
            return client.get(f"{address}{path}", params=query, headers=dict(headers))
    except httpx.TimeoutException:
        raise Unreachable(f"timed out after {timeout:g}s asking {address}") from None
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        raise Unreachable(f"cannot reach {address}: {type(exc).__name__}: {exc}") from None
