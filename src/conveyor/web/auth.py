"""Bearer tokens for the API's writes. Reads are open.

Tokens come from the config's ``api.tokens`` and are held as SHA-256 digests only. A presented token is
hashed and compared with :func:`hmac.compare_digest` against **every** configured digest, with no early
exit, so the time taken does not reveal which token (or how much of one) matched. The matching token's
name becomes the actor recorded on Events: ``api:<name>``.

:class:`~conveyor.web.gate.RequestGate` checks the token from the headers, before a body is read.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from conveyor.config.resolved import ApiToken
from conveyor.web.errors import ApiError


class TokenCheck:
    def __init__(self, tokens: Iterable[ApiToken]) -> None:
        self._tokens = tuple(tokens)

    def actor(self, presented: str | None) -> str:
        """``api:<name>`` for a configured token (from ``Authorization: Bearer <token>``), else a 401
        :class:`ApiError` that never repeats what was presented."""
        if not presented:
            raise _unauthorized("missing bearer token: send Authorization: Bearer <token>")
        digest = hashlib.sha256(presented.encode()).digest()
        matched: str | None = None
        for token in self._tokens:
            if hmac.compare_digest(digest, token.sha256):
                matched = token.name
        if matched is None:
            raise _unauthorized("invalid bearer token")
        return f"api:{matched}"


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
