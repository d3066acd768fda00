"""``GET /api/audit`` and ``GET /api/audit/verify``: the operator actions the API's writes record (actor
``api:<token name>``, reason), pages, filters and refusals; verification on both backends, with a row
edited behind conveyor's back; and the CLI's ``audit`` and ``audit verify`` against a live ``serve``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from conveyor.config import load_config
from conveyor.store.tables import Event
from tests.web.conftest import AUTH, Api, environ, make_api
from tests.web.test_serve import Live, remote, start


def actions(api: Api, **params: Any) -> dict[str, Any]:
    response = api.get("/api/audit", params=params)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_the_api_writes_are_operator_actions_of_their_token(blocked: Api) -> None:
    api = blocked  # web's release failed in staging (released by the fixture without a reason)
    api.ok("/api/apps/web/unblock", {"environment": "staging", "reason": "restored the staging database"})
    api.ok("/api/apps/api/releases", {"reason": "weekly release"}, status=201)
    api.work()
    api.ok("/api/apps/api/promote", {"reason": "CHG-1234 approved"})
    sha = api.project.head("web")
    api.ok("/api/apps/web/deploy", {"version": sha[:8], "environment": "integration", "reason": "redo"})
    found = actions(api)["actions"]
    assert [(a["action"], a["app"], a["environment"], a["reason"], a["actor"]) for a in found] == [
        ("deploy", "web", "integration", "redo", "api:ci"),
        ("promote", "api", "production", "CHG-1234 approved", "api:ci"),
        ("release", "api", None, "weekly release", "api:ci"),
        ("unblock", "web", "staging", "restored the staging database", "api:ci"),
        ("release", "web", None, None, "api:ci"),
    ]
    assert found[0]["release"] == sha[:7]
    assert found[0]["deployment_id"] is not None


def test_pages_go_back_with_next_before(api: Api) -> None:
    api.ok("/api/apps/web/releases", {"reason": "one"})
    api.ok("/api/apps/api/releases", {"reason": "two"})
    api.work()
    api.ok("/api/apps/api/promote", {"reason": "three"})
    seen, before = [], None
    while True:
        page = actions(api, limit=1, **({"before": before} if before else {}))
        seen.extend(a["reason"] for a in page["actions"])
        before = page["next_before"]
        if before is None:
            break
    assert seen == ["three", "two", "one"]
    assert [a["reason"] for a in actions(api, app="web")["actions"]] == ["one"]
    assert actions(api, since="2099-01-01T00:00:00Z")["actions"] == []
    assert len(actions(api, since="1h")["actions"]) == 3


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [({"since": "last tuesday"}, 422, "since"), ({"app": "nope"}, 404, "app"), ({"limit": 0}, 422, "limit")],
)
def test_wrong_filters_are_refused_naming_the_field(api: Api, params: dict[str, Any], status: int, field: str) -> None:
    response = api.get("/api/audit", params=params)
    assert response.status_code == status
    assert response.json()["error"]["field"] == field


@pytest.fixture
def any_api(tmp_path: Path, db_url: str) -> Iterator[Api]:
    yield from make_api(tmp_path, db_url)


def test_verify_needs_a_token_and_names_an_edited_event(any_api: Api) -> None:
    api = any_api
    assert api.get("/api/audit/verify").status_code == 401
    api.ok("/api/apps/web/releases", {"reason": "first"})
    api.work()
    intact = api.get("/api/audit/verify", headers=AUTH).json()
    assert intact["ok"] is True and intact["verified"] == intact["head"]["seq"] > 1
    release = actions(api)["actions"][0]
    with api.db.engine.begin() as conn:
        conn.execute(update(Event).where(Event.id == release["id"]).values(reason="nobody asked"))
    bad = api.get("/api/audit/verify", params={"expect": "1:xyz"}, headers=AUTH)
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "expect")
    broken = api.get("/api/audit/verify", headers=AUTH).json()
    assert broken["ok"] is False
    assert broken["verified"] == release["id"] - 1  # the events before it, sealed in id order here
    assert broken["broken"]["event_id"] == release["id"]
    assert broken["broken"]["kind"] == "release.created"


def test_the_openapi_description_lists_the_audit_routes(api: Api) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/audit", "/api/audit/verify"} <= set(paths)


# -- the CLI against a live server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start(tmp_path_factory.mktemp("live-audit"))
    yield server
    if server.process.poll() is None:
        server.stop()


def test_audit_and_verify_through_the_server(live: Live) -> None:
    code, _, err = remote(live, "release", "web", "--reason", "through the server", "--server", live.url)
    assert (code, err) == (0, "")
    code, out, _ = remote(live, "audit", "--json", "--app", "web", "--since", "1h", "--server", live.url)
    assert code == 0
    found = json.loads(out)["actions"]
    assert [(a["action"], a["actor"], a["reason"]) for a in found] == [("release", "api:ci", "through the server")]
    code, out, _ = remote(live, "audit", "verify", "--server", live.url)
    assert code == 0, out
    assert out.startswith("verified ")
    code, _, err = remote(live, "audit", "verify", "--server", live.url, token=None)
    assert code == 1
    assert err.startswith("error: unauthorized: set CONVEYOR_TOKEN")
    assert httpx.get(f"{live.url}/api/audit").json()["actions"][0]["reason"] == "through the server"


def test_a_broken_chain_through_the_server_is_exit_1(live: Live) -> None:
    url = load_config(live.project.config, {k: v for k, v in environ("").items() if k != "CONVEYOR_DATABASE_URL"})
    engine = create_engine(url.database_url)
    with engine.begin() as conn:
        conn.execute(update(Event).where(Event.kind == "release.created").values(message="rewritten"))
    engine.dispose()
    code, _, err = remote(live, "audit", "verify", "--server", live.url)
    assert code == 1
    assert err.startswith("chain broken at event #")
    assert "(release.created at " in err
