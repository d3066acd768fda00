"""GitHub's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``.

Checked on the raw bytes before anything parses them, and compared in constant time
(:func:`hmac.compare_digest`), so a timing difference tells an attacker nothing about the expected
value. The older ``X-Hub-Signature`` (SHA-1) is never accepted, not even as a fallback.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_SHA256 = re.compile(r"^sha256=([0-9a-f]{64})$")


def sign(secret: str, body: bytes) -> str:
    """The header value GitHub sends for ``body`` (tests and benchmarks sign with it)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_problem(secret: str, body: bytes, header: str | None) -> str | None:
    """Why ``header`` does not sign ``body`` with ``secret``, or None when it does."""
    if not secret:
        return "no webhook secret is configured (github.webhook_secret)"
    if header is None:
        return "missing X-Hub-Signature-256"
    match = _SHA256.match(header.strip().lower())
    if match is None:
        return "malformed X-Hub-Signature-256 (expected sha256=<64 hex digits>)"
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match.group(1)):
        return "X-Hub-Signature-256 does not match the body"
    return None
