"""Holds through the API (in-process) and through the CLI's remote mode against a real ``conveyor serve``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.conftest import Api, make_api
from tests.web.test_serve import Live, remote, start


def test_freeze_lists_explains_and_unfreezes(api: Api) -> None:
    created = api.ok("/api/holds/freeze", {"environment": "production", "reason": "quarter end"}, status=201)
    assert (created["kind"], created["app"], created["environment"]) == ("freeze", None, "production")
    assert created["lift"] == f"conveyor unfreeze {created['id']}"
    assert created["actor"] == "api:ci"
    listed = api.get("/api/holds").json()["holds"]
    assert [h["id"] for h in listed] == [created["id"]]
    api.ok("/api/apps/web/releases")
    api.work()
    assert api.environment("web", "staging")["state"] == "succeeded"
    production = api.environment("web", "production")
    assert production["state"] == "waiting"
    assert [o["kind"] for o in production["obstacles"]] == ["freeze"]
    why = api.get("/api/apps/web/why", params={"environment": "production"}).json()
    assert "conveyor unfreeze" in why["environments"]["production"]["explanation"]

    lifted = api.ok(f"/api/holds/{created['id']}/unfreeze", {"reason": "closed"})
    assert lifted == {"id": created["id"], "kind": "freeze", "app": None, "environment": "production"}
    assert api.get("/api/holds").json()["holds"] == []
    api.work()
    assert api.environment("web", "production")["state"] == "succeeded"


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/holds/freeze", {"reason": "r", "until": "2001-01-01"}, 409, "until"),  # already past: a conflict
        ("/api/holds/freeze", {"reason": "r", "until": "whenever"}, 422, "until"),
        ("/api/holds/freeze", {"app": "nope", "reason": "r"}, 404, "app"),
        ("/api/holds/freeze", {"environment": "moon", "reason": "r"}, 422, "environment"),
        ("/api/holds/freeze", {}, 422, "reason"),
        ("/api/holds/stop", {"reason": "r"}, 422, "environment"),
        ("/api/holds/99/unfreeze", None, 404, None),
        ("/api/apps/nope/block", {"reason": "r"}, 404, "app"),
        ("/api/apps/web/deploy", {"version": "v1", "environment": "staging", "force": True}, 422, None),
    ],
)
def test_wrong_input_is_one_error(api: Api, path: str, body: object, status: int, field: str | None) -> None:
    response = api.post(path, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error.get("field") == field
    assert len(error["message"].splitlines()) == 1


def test_writes_need_a_token(api: Api) -> None:
    assert api.post("/api/holds/freeze", {"reason": "r"}, token=None).status_code == 401
    assert api.post("/api/holds/stop", {"environment": "production", "reason": "r"}, token=None).status_code == 401
    assert api.get("/api/holds").status_code == 200


def test_block_by_hand_and_unfreeze_refuses_it(api: Api) -> None:
    block = api.ok("/api/apps/web/block", {"environment": "staging", "reason": "migration"}, status=201)
    assert block["lift"] == "conveyor unblock web --env staging --reason TEXT"
    refused = api.post(f"/api/holds/{block['id']}/unfreeze")
    assert refused.status_code == 409
    assert "conveyor unblock web --env staging" in refused.json()["error"]["message"]
    api.ok("/api/apps/web/unblock", {"environment": "staging", "reason": "done"})


def test_stop_is_the_banner_and_force_passes_it(api: Api) -> None:
    api.ok("/api/apps/api/releases")
    api.work()
    stop = api.ok("/api/holds/stop", {"environment": "production", "reason": "incident"}, status=201)
    assert [s["id"] for s in api.get("/api/apps").json()["stops"]] == [stop["id"]]
    refused = api.post("/api/apps/api/promote")
    assert refused.status_code == 409
    assert "line stopped in production" in refused.json()["error"]["message"]
    api.ok("/api/apps/api/promote", {"force": True, "reason": "hotfix approved"}, status=202)
    api.work()
    assert api.environment("api", "production")["state"] == "succeeded"


# -- the CLI's remote mode -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start(tmp_path_factory.mktemp("holds-live"))
    yield server
    if server.process.poll() is None:
        server.stop()


def test_hold_commands_through_the_server(live: Live) -> None:
    def ok(*args: str) -> str:
        code, out, err = remote(live, *args, "--server", live.url)
        assert code == 0, (args, out, err)
        return out

    made = ok("freeze", "--app", "web", "--reason", "remote freeze", "--until", "1d")
    hold_id = int(made.split()[1].strip("#:"))
    assert made.strip() == f"hold #{hold_id}: froze web in every environment; lift it with: conveyor unfreeze {hold_id}"
    assert "remote freeze" in ok("holds")
    stop = ok("stop", "--env", "production", "--reason", "remote stop")
    assert "line stopped in production" in stop
    blocked = ok("block", "api", "--env", "staging", "--reason", "remote block")
    assert "conveyor unblock api --env staging --reason TEXT" in blocked
    kinds = sorted(h["kind"] for h in json.loads(ok("holds", "--json"))["holds"])
    assert kinds == ["block", "freeze", "stop"]
    assert (
        ok("unfreeze", str(hold_id), "--reason", "done").strip()
        == f"lifted freeze #{hold_id} (web in every environment)"
    )

    code, _, err = remote(live, "unfreeze", "999", "--server", live.url)
    assert (code, err.splitlines()) == (1, ["error: no hold #999 (see: conveyor holds)"])
    code, _, err = remote(live, "freeze", "--reason", "r", "--until", "2001-01-01", "--server", live.url)
    assert code == 1 and len(err.splitlines()) == 1 and "in the past" in err
    code, _, err = remote(live, "stop", "--env", "moon", "--reason", "r", "--server", live.url)
    assert code == 2 and "unknown environment 'moon'" in err
    code, _, err = remote(live, "freeze", "--app", "nope", "--reason", "r", "--server", live.url)
    assert (code, err.splitlines()) == (2, ["error: unknown app 'nope' (known: web, api)"])


# -- both backends -------------------------------------------------------------------------------------


@pytest.fixture
def any_api(tmp_path: Path, db_url: str) -> Iterator[Api]:
    yield from make_api(tmp_path, db_url)


def test_every_kind_on_both_backends(any_api: Api) -> None:
    """Freeze, stop, block, unfreeze, unblock and a forced promotion, on SQLite and PostgreSQL."""
    any_api.ok("/api/apps/api/releases")
    any_api.work()  # api (manual tier) waits for a promotion to production
    frozen = any_api.ok("/api/holds/freeze", {"app": "web", "reason": "web freeze", "until": "1h"}, status=201)
    stopped = any_api.ok("/api/holds/stop", {"environment": "production", "reason": "incident"}, status=201)
    blocked = any_api.ok("/api/apps/web/block", {"environment": "staging", "reason": "manual"}, status=201)
    assert [h["kind"] for h in any_api.get("/api/holds").json()["holds"]] == ["freeze", "stop", "block"]
    any_api.ok("/api/apps/web/releases")
    any_api.work()
    web = any_api.get("/api/apps/web").json()["environments"]
    assert [o["kind"] for o in web["integration"]["obstacles"]] == ["freeze"]
    assert web["integration"]["state"] == "waiting"
    assert [o["kind"] for o in web["production"]["obstacles"]] == ["block", "stop", "freeze"]
    forced = any_api.ok("/api/apps/api/promote", {"force": True, "reason": "approved"}, status=202)
    any_api.work()
    assert any_api.environment("api", "production")["state"] == "succeeded", forced
    any_api.ok(f"/api/holds/{frozen['id']}/unfreeze")
    any_api.ok(f"/api/holds/{stopped['id']}/unfreeze")
    any_api.ok("/api/apps/web/unblock", {"reason": "done"})
    assert any_api.get("/api/holds").json()["holds"] == []
    any_api.work()
    assert any_api.environment("web", "production")["state"] == "succeeded"
    assert blocked["lift"] == "conveyor unblock web --env staging --reason TEXT"
