"""The writes: release, deploy, promote, unblock; their answers, refusals and the actor they record."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conveyor.store.tables import Event
from tests.gitrepos import commit, git
from tests.web.conftest import Api


def events(api: Api, kind: str) -> list[Event]:
    with api.db.read() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


# -- releases ------------------------------------------------------------------------------------------


def test_release_is_201_and_flows_to_production(api: Api) -> None:
    sha = api.project.head("web")
    response = api.post("/api/apps/web/releases", {})
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "app": "web",
        "label": sha[:7],
        "sha": sha,
        "created": True,
        "commits": 1,
        "environment": "integration",
    }
    api.work()
    assert api.environment("web", "production")["state"] == "succeeded"
    assert [e.actor for e in events(api, "release.created")] == ["api:ci"]


def test_releasing_the_same_commit_again_is_200_and_not_created(api: Api) -> None:
    first = api.ok("/api/apps/web/releases", status=201)
    again = api.post("/api/apps/web/releases")
    assert again.status_code == 200
    assert again.json() == {**first, "created": False}


def test_release_of_a_tag(api: Api) -> None:
    git(api.project.repo("web"), "tag", "v1.0")
    commit(api.project.repo("web"), {"later.txt": "later\n"}, "after the tag")
    body = api.ok("/api/apps/web/releases", {"ref": "v1.0"}, status=201)
    assert body["label"] == "v1.0"


@pytest.mark.parametrize(
    ("ref", "status", "code", "message"),
    [
        ("no-such-branch", 404, "not_found", "unknown ref 'no-such-branch': no such branch, tag or commit"),
        ("-x", 422, "invalid", "unknown ref '-x': a ref may not start with '-'"),
        ("a..b", 422, "invalid", "unknown ref 'a..b': not a branch name, tag name or commit SHA"),
    ],
)
def test_a_ref_the_repository_lacks_is_404_a_malformed_one_422(
    api: Api, ref: str, status: int, code: str, message: str
) -> None:
    # a well-formed ref can only be found missing by asking git; a malformed one the schema already refuses
    response = api.post("/api/apps/web/releases", {"ref": ref})
    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "field": "ref", "message": message}}


def test_a_git_failure_is_502_on_one_line(api: Api) -> None:
    api.ok("/api/apps/api/releases")
    api.project.repo("api").rename(api.project.root / "repos" / "moved")
    response = api.post("/api/apps/api/releases")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "git_failed"
    assert error["message"].startswith("git ")
    assert "\n" not in error["message"]


def test_release_of_an_unknown_app_is_404(api: Api) -> None:
    response = api.post("/api/apps/nope/releases")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "not_found",
        "field": "app",
        "message": "unknown app 'nope' (known: web, api)",
    }


# -- deploy --------------------------------------------------------------------------------------------


def test_deploy_is_202_with_the_deployment(api: Api) -> None:
    git(api.project.repo("api"), "tag", "v1.0")
    api.ok("/api/apps/api/releases")
    api.work()
    response = api.post("/api/apps/api/deploy", {"version": "v1.0", "environment": "production"})
    assert response.status_code == 202
    queued = response.json()
    assert (queued["app"], queued["environment"], queued["release"]) == ("api", "production", "v1.0")
    api.work()
    production = api.environment("api", "production")
    assert (production["state"], production["deployment_id"]) == ("succeeded", queued["deployment_id"])
    history = api.get("/api/apps/api/history").json()["deployments"]
    assert history[0]["created_by"] == "api:ci"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"version": "v9", "environment": "staging"}, 404, {"code": "not_found"}),
        ({"version": "v1.0", "environment": "moon"}, 422, {"code": "invalid", "field": "environment"}),
        ({"version": "v1.0"}, 422, {"code": "invalid", "field": "environment"}),
        ({"environment": "staging"}, 422, {"code": "invalid", "field": "version"}),
        ({"version": "", "environment": "staging"}, 422, {"code": "invalid", "field": "version"}),
        ({"version": "v1.0", "environment": "staging", "enviroment": "x"}, 422, {"field": "enviroment"}),
        ({"version": 3, "environment": "staging"}, 422, {"field": "version"}),
    ],
)
def test_deploy_refusals(api: Api, body: dict[str, object], status: int, error: dict[str, str]) -> None:
    git(api.project.repo("web"), "tag", "v1.0")
    api.ok("/api/apps/web/releases")
    response = api.post("/api/apps/web/deploy", body)
    assert response.status_code == status, response.text
    got = response.json()["error"]
    assert got.items() >= error.items()
    if status == 422 and "field" in error:
        assert got["message"].startswith(f"{error['field']}: ") or error["field"] == "environment"


def test_a_body_that_is_not_json_is_422(api: Api) -> None:
    response = api.client.post(
        "/api/apps/web/deploy",
        content=b"{not json",
        headers={"Authorization": "Bearer ci-token-0123456789abcdef", "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"


# -- promote -------------------------------------------------------------------------------------------


def test_promote_takes_the_manual_tier_to_production(api: Api) -> None:
    api.ok("/api/apps/api/releases")
    api.work()
    response = api.post("/api/apps/api/promote")
    assert response.status_code == 202
    assert response.json()["environment"] == "production"
    api.work()
    assert api.environment("api", "production")["state"] == "succeeded"
    assert api.environment("api", "production")["sha"] == api.project.head("api")

    again = api.post("/api/apps/api/promote", {})
    assert again.status_code == 409
    assert again.json()["error"]["message"] == "nothing to promote for api: every environment has its newest release"


def test_promote_to_the_first_environment_is_409(api: Api) -> None:
    response = api.post("/api/apps/api/promote", {"to": "integration"})
    assert response.status_code == 409
    assert response.json()["error"]["message"] == "integration is the first environment; cut a release instead"


def test_promote_while_blocked_is_409_with_the_latest_decision(blocked: Api) -> None:
    response = blocked.post("/api/apps/web/promote", {"to": "staging"})
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert error["message"].startswith("web is held in staging:")
    assert "conveyor unblock web --env staging" in error["message"]
    assert set(error["decision"]) == {"verdict", "rule", "summary", "at", "reasons", "evidence"}


# -- unblock -------------------------------------------------------------------------------------------


def test_unblock_lifts_the_block_and_records_the_token(blocked: Api) -> None:
    assert [h["environment"] for h in blocked.get("/api/apps/web").json()["holds"]] == ["staging"]
    response = blocked.post("/api/apps/web/unblock", {"environment": "staging", "reason": "checked by hand"})
    assert response.status_code == 200
    assert response.json() == {"app": "web", "lifted": 1}
    assert blocked.get("/api/apps/web").json()["holds"] == []
    lifted = events(blocked, "hold.lifted")
    assert [(e.actor, e.app) for e in lifted] == [("api:ci", "web")]

    again = blocked.post("/api/apps/web/unblock", {"environment": "staging", "reason": "again"})
    assert again.status_code == 409
    assert again.json()["error"]["message"] == "web is not blocked in staging"


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "reason"), ({"reason": ""}, "reason"), ({"reason": "r", "environment": "moon"}, "environment")],
)
def test_unblock_needs_a_reason_and_a_known_environment(blocked: Api, body: dict[str, str], field: str) -> None:
    response = blocked.post("/api/apps/web/unblock", body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert len(blocked.get("/api/apps/web").json()["holds"]) == 1


def test_a_blank_reason_is_refused(blocked: Api) -> None:
    response = blocked.post("/api/apps/web/unblock", {"reason": "   "})
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid",
        "field": "reason",
        "message": "a reason is required to unblock",
    }


def test_a_refusal_names_the_request_field_not_the_cli_option(blocked: Api) -> None:
    response = blocked.post("/api/holds/freeze", {"reason": "too late", "until": "2001-01-01"})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["field"] == "until"
    assert error["message"].startswith("until '2001-01-01' is in the past"), error


# -- the conductor is woken ----------------------------------------------------------------------------


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def wake(self) -> None:
        self.count += 1


def test_every_write_wakes_an_attached_conductor(api: Api) -> None:
    from fastapi.testclient import TestClient

    from conveyor.web import create_app

    wakes = Wakes()
    with TestClient(create_app(api.config, api.db, conductor=wakes)) as client:
        headers = {"Authorization": "Bearer ci-token-0123456789abcdef"}
        assert client.post("/api/apps/web/releases", headers=headers).status_code == 201
        assert wakes.count == 1
        assert client.post("/api/apps/web/deploy", json={"version": "nope"}, headers=headers).status_code == 422
        assert wakes.count == 1  # nothing written, nothing to wake for
        sha = api.project.head("web")
        body = {"version": sha[:8], "environment": "staging"}
        assert client.post("/api/apps/web/deploy", json=body, headers=headers).status_code == 202
        assert wakes.count == 2
