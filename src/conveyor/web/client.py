"""The API seen from the CLI's remote mode: ``release``, ``deploy``, ``promote``, ``unblock``, ``block``,
``freeze``, ``stop``, ``unfreeze``, ``rollback``, ``unveto`` and ``cancel`` sent to a ``conveyor serve``
over HTTP (``--server URL`` or ``CONVEYOR_URL``, token from ``CONVEYOR_TOKEN``), and the reads ``status``,
``why``, ``history``, ``holds``, ``logs``, ``errors``, ``audit`` and ``audit verify`` answered by it. A new read is one
method calling :meth:`ApiClient.get` with the path and the keys its answer must have.

Failures become :class:`RemoteError` with the exit code the local command would have: 2 for an unknown
app or environment, 1 for anything refused, unauthorized or unreachable.
"""

from __future__ import annotations

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

    def deploy(
        self, app: str, version: str, environment: str, *, force: bool = False, reason: str = ""
    ) -> dict[str, Any]:
        body = {"version": version, "environment": environment, **_forcing(force, reason)}
        return self._post(app, "deploy", body, "deployment_id")

    def promote(self, app: str, to: str | None, *, force: bool = False, reason: str = "") -> dict[str, Any]:
        body = {**({"to": to} if to else {}), **_forcing(force, reason)}
        return self._post(app, "promote", body, "deployment_id")

    def block(self, app: str, environment: str | None, reason: str) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason, **({"environment": environment} if environment else {})}
        return self._post(app, "block", body, "id")

    def freeze(self, app: str | None, environment: str | None, reason: str, until: str | None) -> dict[str, Any]:
        body = _present(app=app, environment=environment, reason=reason, until=until)
        return self._request("POST", "/api/holds/freeze", ("id",), json=body)

    def stop(self, environment: str, reason: str, until: str | None) -> dict[str, Any]:
        body = _present(environment=environment, reason=reason, until=until)
        return self._request("POST", "/api/holds/stop", ("id",), json=body)

    def unfreeze(self, hold_id: int, reason: str | None) -> dict[str, Any]:
        return self._request("POST", f"/api/holds/{hold_id}/unfreeze", ("id", "kind"), json=_present(reason=reason))

    def holds(self) -> dict[str, Any]:
        return self.get("/api/holds", {}, "holds")

    def github_deliveries(self, app: str | None, state: str | None, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if app:
            params["app"] = app
        if state:
            params["state"] = state
        return self.get("/api/github/deliveries", params, "deliveries")

    def unblock(self, app: str, environment: str | None, reason: str) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason}
        if environment:
            body["environment"] = environment
        return self._post(app, "unblock", body, "lifted")

    def audit(self, *, since: datetime | None, app: str | None, limit: int) -> dict[str, Any]:
        params = {"limit": limit, **_given(since=since.isoformat() if since else None, app=app)}
        return self.get("/api/audit", params, "actions")

    def verify_audit(self, expect: str | None = None) -> dict[str, Any]:
        return self.get("/api/audit/verify", _given(expect=expect), "ok", "verified", "head")

    def rollback(self, app: str, environment: str, reason: str, to: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"environment": environment, "reason": reason}
        if to:
            body["to"] = to
        return self._post(app, "rollback", body, "deployment_id", "release", "vetoed")

    def unveto(self, app: str, version: str, environment: str, reason: str) -> dict[str, Any]:
        body = {"version": version, "environment": environment, "reason": reason}
        return self._post(app, "unveto", body, "hold_id")

    def cancel(
        self, app: str | None, environment: str | None, reason: str, deployment_id: int | None
    ) -> dict[str, Any]:
        if deployment_id is not None:
            path = f"/api/deployments/{deployment_id}/cancel"
            return self._request("POST", path, ("cancelled",), json={"reason": reason})
        body: dict[str, Any] = {"reason": reason}
        if environment:
            body["environment"] = environment
        return self._post(app or "", "cancel", body, "cancelled")

    def status(self, app: str | None) -> dict[str, Any]:
        """``{"apps": [...], "stops": [...]}`` as ``conveyor status --json`` prints it, for every app or one
        (the stop-the-line banner concerns every app, so it comes with one app's status too)."""
        every = self.get("/api/apps", {}, "apps", "stops")
        if app is None:
            return every
        return {"apps": [self.get(app_path(app), {}, "name", "environments")], "stops": every["stops"]}

    def why(self, app: str, environment: str | None) -> dict[str, Any]:
        params = {"environment": environment} if environment else {}
        return self.get(app_path(app, "why"), params, "app", "environments", "holds")

    def history(self, app: str, limit: int) -> dict[str, Any]:
        return self.get(app_path(app, "history"), {"limit": limit}, "app", "deployments")

    def errors(self, app: str, environment: str | None, since: datetime | None) -> dict[str, Any]:
        params = _given(environment=environment, since=since.isoformat() if since else None)
        return self.get(app_path(app, "errors"), params, "app", "since", "issues")

    def dsn(self, app: str, environment: str) -> dict[str, Any]:
        return self._post(app, "dsn", {"environment": environment}, "dsn")

    def get(self, path: str, params: dict[str, Any], *expected: str) -> dict[str, Any]:
        """GET ``path``; the answer must be a JSON object with the ``expected`` keys."""
        return self._request("GET", path, expected, params=params)

    def logs(self, app: str, environment: str | None, deployment_id: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if environment:
            params["environment"] = environment
        if deployment_id is not None:
            params["deployment"] = deployment_id
        return self.get(app_path(app, "logs"), params, "app", "deployment", "steps")

    def _post(self, app: str, action: str, body: dict[str, Any], *expected: str) -> dict[str, Any]:
        """POST to ``/api/apps/APP/ACTION``; the answer must be a JSON object with the ``expected`` keys."""
        return self._request("POST", app_path(app, action), expected, json=body)

    def _request(self, method: str, path: str, expected: tuple[str, ...], **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
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


def _forcing(force: bool, reason: str | None) -> dict[str, Any]:
    """``force`` when set, and the reason whenever one was given (it is recorded in the audit trail)."""
    return {**({"force": True} if force else {}), **({"reason": reason} if reason else {})}


def _present(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def app_path(app: str, *rest: str) -> str:
    """``/api/apps/APP[/REST...]`` with the app name escaped."""
    return "/".join([f"/api/apps/{quote(app, safe='')}", *rest])


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
