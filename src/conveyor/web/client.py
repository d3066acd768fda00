"""The API seen from the CLI's remote mode: ``release``, ``deploy``, ``promote``, ``unblock`` and ``audit``
sent to a ``conveyor serve`` over HTTP (``--server URL`` or ``CONVEYOR_URL``, token from ``CONVEYOR_TOKEN``).

Failures become :class:`RemoteError` with the exit code the local command would have: 2 for an unknown
app or environment, 1 for anything refused, unauthorized or unreachable.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

TOKEN_VARIABLE = "CONVEYOR_TOKEN"  # noqa: S105 (the variable's name, not a token)
URL_VARIABLE = "CONVEYOR_URL"


class RemoteError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ApiClient:
    def __init__(
        self, base_url: str, token: str | None, *, timeout: float = 300.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token or None
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def release(self, app: str, ref: str | None, reason: str | None = None) -> dict[str, Any]:
        body = _given(ref=ref, reason=reason)
        return self._post(app, "releases", body, "created", "label", "sha", "commits", "environment")

    def deploy(self, app: str, version: str, environment: str, reason: str | None = None) -> dict[str, Any]:
        body = {"version": version, "environment": environment, **_given(reason=reason)}
        return self._post(app, "deploy", body, "deployment_id")

    def promote(self, app: str, to: str | None, reason: str | None = None) -> dict[str, Any]:
        return self._post(app, "promote", _given(to=to, reason=reason), "deployment_id")

    def unblock(self, app: str, environment: str | None, reason: str) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason}
        if environment:
            body["environment"] = environment
        return self._post(app, "unblock", body, "lifted")

    def audit(self, *, since: datetime | None, app: str | None, limit: int) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit, **_given(since=since.isoformat() if since else None, app=app)}
        return self._request("GET", "/api/audit", "actions", params=params)

    def verify_audit(self, expect: str | None = None) -> dict[str, Any]:
        return self._request("GET", "/api/audit/verify", "ok", "verified", "head", params=_given(expect=expect))

    def _post(self, app: str, action: str, body: dict[str, Any], *expected: str) -> dict[str, Any]:
        """POST to ``/api/apps/APP/ACTION``; the answer must be a JSON object with the ``expected`` keys."""
        return self._request("POST", f"/api/apps/{quote(app, safe='')}/{action}", *expected, body=body)

    def _request(
        self,
        method: str,
        path: str,
        *expected: str,
        body: dict[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self._client.request(method, path, json=body, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach conveyor at {self.base_url}: {exc}") from exc
        data = _json(response)
        if response.is_success:
            missing = [key for key in expected if key not in data]
            if missing:
                raise RemoteError(f"{self.base_url} answered without {', '.join(missing)}: is it a conveyor server?")
            return data
        found = data.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        message = str(error.get("message") or f"HTTP {response.status_code} from {self.base_url}")
        if response.status_code == 401:
            if self.token:
                raise RemoteError(f"unauthorized: set {TOKEN_VARIABLE} to a token the server accepts ({message})")
            raise RemoteError(f"unauthorized: set {TOKEN_VARIABLE} to one of the server's api.tokens")
        unknown_name = error.get("code") in ("not_found", "invalid") and error.get("field") in ("app", "environment")
        raise RemoteError(message.splitlines()[0] if message else message, 2 if unknown_name else 1)


def _given(**values: str | None) -> dict[str, str]:
    """The values that were given, to leave the others out of a request."""
    return {key: value for key, value in values.items() if value}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
