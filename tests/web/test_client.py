"""The CLI's API client against canned answers (httpx.MockTransport): exit codes and messages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conveyor.web.client import ApiClient, RemoteError


def client(status: int, body: Any, token: str | None = "a-token-0123456789") -> tuple[ApiClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    return ApiClient("http://conveyor.test/", token, transport=httpx.MockTransport(answer)), seen


def test_a_write_sends_the_token_and_the_body() -> None:
    api, seen = client(202, {"deployment_id": 7})
    assert api.deploy("web app", "v1.0", "staging") == {"deployment_id": 7}
    request = seen[0]
    assert request.url == "http://conveyor.test/api/apps/web%20app/deploy"
    assert request.headers["Authorization"] == "Bearer a-token-0123456789"
    assert request.read() == b'{"version":"v1.0","environment":"staging"}'


@pytest.mark.parametrize(
    ("status", "error", "exit_code"),
    [
        (404, {"code": "not_found", "message": "unknown app 'x' (known: web)", "field": "app"}, 2),
        (422, {"code": "invalid", "message": "unknown environment 'moon' (known: staging)", "field": "environment"}, 2),
        (404, {"code": "not_found", "message": "no release 'v9' of web (see: conveyor history web)"}, 1),
        (422, {"code": "invalid", "message": "a reason is required to unblock"}, 1),
        (409, {"code": "conflict", "message": "web is not blocked"}, 1),
        (502, {"code": "git_failed", "message": "git fetch failed (exit 128): gone"}, 1),
    ],
)
def test_errors_keep_the_message_and_the_local_exit_code(status: int, error: dict[str, str], exit_code: int) -> None:
    api, _ = client(status, {"error": error})
    with pytest.raises(RemoteError) as caught:
        api.unblock("web", None, "r")
    assert (str(caught.value), caught.value.exit_code) == (error["message"], exit_code)


def test_unauthorized_says_which_variable_to_set() -> None:
    api, seen = client(401, {"error": {"code": "unauthorized", "message": "missing bearer token"}}, token=None)
    with pytest.raises(RemoteError, match=r"^unauthorized: set CONVEYOR_TOKEN") as caught:
        api.promote("web", None)
    assert caught.value.exit_code == 1
    assert "Authorization" not in seen[0].headers


def test_an_answer_that_is_not_conveyor_is_one_clear_error() -> None:
    api, _ = client(200, ["not", "an", "object"])
    with pytest.raises(RemoteError, match="is it a conveyor server"):
        api.release("web", None)
    proxy, _ = client(500, "<html>bad gateway</html>")
    with pytest.raises(RemoteError, match=r"^HTTP 500 from http://conveyor.test"):
        proxy.release("web", None)
