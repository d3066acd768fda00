"""Who conveyor is on GitHub: a token, or a GitHub App acting through its installations.

A token (a fine-grained or classic personal access token, or any token GitHub takes as ``Bearer``) is
sent as it is. A GitHub App proves itself with a JWT it signs (RS256, with the App's private key): ``iat``
a minute in the past (GitHub's advice against clock drift), ``exp`` ten minutes after ``iat``, ``iss`` the
App's id. With the JWT it finds the installation of a repository (``GET /repos/{owner}/{repo}/installation``)
and exchanges it for an installation token (``POST /app/installations/{id}/access_tokens``), which acts
on that repository for an hour. Each is cached: the JWT and each installation token until a minute
before they expire, each repository's installation until GitHub refuses a token made from it.

Both kinds are safe to share between threads. The requests an App makes for its tokens go through the
client's own sender (``Send``), so they are retried and rate limited like every other request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from conveyor.config.resolved import GitHubApp

__all__ = ["AppAuth", "Credentials", "GitHubAuthError", "Send", "TokenAuth", "app_jwt", "app_private_key"]

JWT_BACKDATE = 60.0  # seconds iat lies in the past, against clock drift between conveyor and GitHub
JWT_LIFETIME = 600.0  # seconds from iat to exp: GitHub's maximum
EXPIRY_MARGIN = 60.0  # seconds before its expiry a JWT or token is replaced

# (method, path, authorization) -> the response, sent with retries but no other authentication
Send = Callable[[str, str, str], httpx.Response]


class GitHubAuthError(Exception):
    """GitHub refused conveyor's credentials, or the App is not installed on the repository."""


class Credentials(Protocol):
    def authorization(self, repo: str | None, send: Send) -> str:
        """The ``Authorization`` header for a request about ``repo`` ("owner/name"; None: about none)."""
        ...

    def forget(self, repo: str | None) -> bool:
        """GitHub refused what :meth:`authorization` gave for ``repo``: make a new one next time; False
        when there is no new one to make (a token is what it is)."""
        ...


class TokenAuth:
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def authorization(self, repo: str | None, send: Send) -> str:
        return self._header

    def forget(self, repo: str | None) -> bool:
        return False  # a token cannot be renewed: the request fails with GitHub's answer


def app_private_key(pem: str) -> RSAPrivateKey:
    """The App's key from the PEM text GitHub gave for it; ValueError saying what is wrong (the config
    loader reports it at the key's place)."""
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        reason = "it is encrypted" if isinstance(exc, TypeError) else "it is not a PEM private key"
        raise ValueError(f"cannot read the GitHub App's private key: {reason}") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("the GitHub App's private key must be an RSA key (GitHub makes PEM RSA keys)")
    return key


def app_jwt(app_id: int, key: RSAPrivateKey, now: float) -> tuple[str, float]:
    """A JWT that authenticates the App at ``now`` (Unix seconds), and when it expires."""
    issued = int(now - JWT_BACKDATE)
    expires = issued + int(JWT_LIFETIME)
    token = jwt.encode({"iat": issued, "exp": expires, "iss": str(app_id)}, key, algorithm="RS256")
    return token, float(expires)


class AppAuth:
    """A GitHub App's credentials; ``clock`` is Unix seconds (tokens expire at wall-clock times)."""

    def __init__(self, app: GitHubApp, clock: Callable[[], float] = time.time) -> None:
        self.app_id, self._key, self.clock = app.id, app_private_key(app.private_key), clock
        self._lock = threading.Lock()
        self._jwt: tuple[str, float] | None = None
        self._installations: dict[str, int] = {}  # repo -> installation id
        self._tokens: dict[int, tuple[str, float]] = {}  # installation id -> (token, expires at)

    def authorization(self, repo: str | None, send: Send) -> str:
        if repo is None:
            return f"Bearer {self._app_jwt()}"
        # One lock for the lookups: a token is fetched once, not by every thread that finds it missing.
        with self._lock:
            installation = self._installations.get(repo)
            if installation is None:
                installation = self._installation_of(repo, send)
                self._installations[repo] = installation
            cached = self._tokens.get(installation)
            if cached is None or cached[1] - EXPIRY_MARGIN <= self.clock():
                cached = self._token_for(installation, send)
                self._tokens[installation] = cached
            return f"Bearer {cached[0]}"

    def forget(self, repo: str | None) -> bool:
        with self._lock:
            self._jwt = None
            installation = self._installations.pop(repo, None) if repo is not None else None
            if installation is not None:
                self._tokens.pop(installation, None)
        return True

    def _app_jwt(self) -> str:
        now = self.clock()
        cached = self._jwt
        if cached is None or cached[1] - EXPIRY_MARGIN <= now:
            cached = self._jwt = app_jwt(self.app_id, self._key, now)
        return cached[0]

    def _installation_of(self, repo: str, send: Send) -> int:
        response = send("GET", f"/repos/{repo}/installation", f"Bearer {self._app_jwt()}")
        if response.status_code == 404:
            raise GitHubAuthError(f"the GitHub App {self.app_id} is not installed on {repo}")
        body = _json_or_refusal(response, f"finding the App's installation on {repo}")
        try:
            return int(body["id"])
        except (KeyError, TypeError, ValueError):
            raise GitHubAuthError(f"GitHub's answer about the App's installation on {repo} has no id") from None

    def _token_for(self, installation: int, send: Send) -> tuple[str, float]:
        path = f"/app/installations/{installation}/access_tokens"
        response = send("POST", path, f"Bearer {self._app_jwt()}")
        body = _json_or_refusal(response, f"getting a token of installation {installation}")
        try:
            expires = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00")).timestamp()
            return str(body["token"]), expires
        except (KeyError, ValueError):
            raise GitHubAuthError(f"GitHub's token of installation {installation} has no token or expiry") from None


def _json_or_refusal(response: httpx.Response, doing: str) -> dict[str, Any]:
    if not response.is_success:
        raise GitHubAuthError(f"GitHub refused {doing}: HTTP {response.status_code} {github_message(response)}".strip())
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise GitHubAuthError(f"GitHub answered {doing} with something other than a JSON object")
    return body


def github_message(response: httpx.Response) -> str:
    """The ``message`` GitHub puts in an error's JSON body, or "" when there is none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("message", "")) if isinstance(body, dict) else ""
