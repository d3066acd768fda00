"""The read endpoints: apps, why, history, one release, one deployment; open without a token."""

from __future__ import annotations

import json

import pytest

from tests.web.conftest import Api


@pytest.fixture
def delivered(api: Api) -> Api:
    api.ok("/api/apps/web/releases")
    api.ok("/api/apps/api/releases")
    api.work()
    return api


def test_apps_lists_every_app_like_status_json(delivered: Api) -> None:
    response = delivered.get("/api/apps")
    assert response.status_code == 200
    apps = response.json()["apps"]
    assert [a["name"] for a in apps] == ["web", "api"]
    cli = json.loads(delivered.cli("status", "--json").output)
    assert apps == cli["apps"]


def test_one_app_has_environments_and_holds(delivered: Api) -> None:
    web = delivered.get("/api/apps/web").json()
    assert set(web) >= {"name", "team", "tier", "groups", "environments", "holds"}
    production = web["environments"]["production"]
    assert (production["state"], production["sha"]) == ("succeeded", delivered.project.head("web"))
    assert set(production) >= {"release", "sha", "state", "since", "live", "summary", "deployment_id"}
    assert web["holds"] == []
    assert delivered.get("/api/apps/api").json()["environments"]["production"]["state"] is None


def test_why_explains_the_manual_tier(delivered: Api) -> None:
    answer = delivered.get("/api/apps/api/why").json()
    production = answer["environments"]["production"]
    assert production["decision"]["rule"] == "ManualTierWaitsForPromotion"
    assert "conveyor promote api" in production["explanation"]
    only = delivered.get("/api/apps/api/why", params={"environment": "staging"}).json()
    assert list(only["environments"]) == ["staging"]


def test_history_is_newest_first_with_a_limit(delivered: Api) -> None:
    rows = delivered.get("/api/apps/web/history").json()["deployments"]
    assert [r["environment"] for r in rows] == ["production", "staging", "integration"]
    assert rows[-1]["created_by"] == "api:ci"
    limited = delivered.get("/api/apps/web/history", params={"limit": 1}).json()
    assert (limited["app"], len(limited["deployments"])) == ("web", 1)


def test_a_release_has_its_commits_and_deployments(delivered: Api) -> None:
    release_id = delivered.get("/api/apps/web/history").json()["deployments"][0]["deployment_id"]
    deployment = delivered.get(f"/api/deployments/{release_id}").json()
    release = delivered.get(f"/api/releases/{deployment['release']['id']}").json()
    assert release["app"] == "web"
    assert release["sha"] == delivered.project.head("web")
    assert release["created_by"] == "api:ci"
    assert [c["subject"] for c in release["commits"]] == ["web: first commit"]
    assert [(d["environment"], d["state"]) for d in release["deployments"]] == [
        ("integration", "succeeded"),
        ("staging", "succeeded"),
        ("production", "succeeded"),
    ]


def test_a_deployment_has_its_steps_and_their_attempts(delivered: Api) -> None:
    production = delivered.get("/api/apps/web").json()["environments"]["production"]
    deployment = delivered.get(f"/api/deployments/{production['deployment_id']}").json()
    assert (deployment["app"], deployment["environment"], deployment["state"]) == ("web", "production", "succeeded")
    kinds = [(s["kind"], s["name"], s["state"]) for s in deployment["steps"]]
    assert ("deploy", "deploy", "succeeded") in kinds
    assert any(kind == "check" and name == "smoke" for kind, name, _ in kinds)
    for step in deployment["steps"]:
        assert step["attempt"] == 1
        assert step["duration_seconds"] is not None and step["duration_seconds"] >= 0
        assert [(a["attempt"], a["outcome"]) for a in step["attempts"]] == [(1, "succeeded")]
        assert set(step) >= {"outcome", "measurements", "log", "started_at", "finished_at"}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/apps/nope", "unknown app 'nope' (known: web, api)"),
        ("/api/apps/nope/why", "unknown app 'nope' (known: web, api)"),
        ("/api/apps/nope/history", "unknown app 'nope' (known: web, api)"),
        ("/api/releases/999", "no release #999"),
        ("/api/deployments/999", "no deployment #999"),
    ],
)
def test_unknown_things_are_404_not_found(api: Api, path: str, message: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["message"] == message


def test_an_unknown_route_is_404_in_the_same_shape(api: Api) -> None:
    response = api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not Found"}}


def test_an_unknown_environment_in_why_is_422_naming_it(api: Api) -> None:
    response = api.get("/api/apps/web/why", params={"environment": "moon"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error == {
        "code": "invalid",
        "field": "environment",
        "message": "unknown environment 'moon' (known: integration, staging, production)",
    }


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/apps/web/history?limit=0", "limit"),
        ("/api/apps/web/history?limit=lots", "limit"),
        ("/api/releases/abc", "release_id"),
        ("/api/deployments/0", "deployment_id"),
        ("/api/deployments/99999999999", "deployment_id"),
    ],
)
def test_bad_query_and_path_values_are_422_naming_the_field(api: Api, path: str, field: str) -> None:
    response = api.get(path)
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid", field)
    assert error["message"].startswith(f"{field}: ")


def test_openapi_describes_the_api(api: Api) -> None:
    schema = api.get("/openapi.json").json()
    assert {"/api/apps", "/api/apps/{app}", "/api/apps/{app}/releases", "/healthz", "/metrics"} <= set(schema["paths"])
    assert "ErrorResponse" in schema["components"]["schemas"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_logs_answer_what_conveyor_logs_json_prints(delivered: Api) -> None:
    response = delivered.get("/api/apps/web/logs")
    assert response.status_code == 200
    answer = response.json()
    assert answer == json.loads(delivered.cli("logs", "web", "--json").output)
    assert answer["deployment"]["environment"] == "production"
    assert [s["kind"] for s in answer["steps"]] == ["deploy", "check"]
    assert answer["steps"][0]["attempts"][0]["outcome"] == "succeeded"
    first = delivered.get("/api/apps/web/logs", params={"deployment": 1}).json()
    assert first["deployment"]["id"] == 1
    staging = delivered.get("/api/apps/web/logs", params={"environment": "staging"}).json()
    assert staging["deployment"]["environment"] == "staging"


def test_logs_of_nothing_is_404_and_an_unknown_environment_422(delivered: Api) -> None:
    none = delivered.get("/api/apps/api/logs", params={"environment": "production"})
    assert none.status_code == 404
    assert none.json()["error"] == {"code": "not_found", "message": "no deployment of api in production"}
    assert delivered.get("/api/apps/nope/logs").status_code == 404
    unknown = delivered.get("/api/apps/web/logs", params={"environment": "prod"})
    assert (unknown.status_code, unknown.json()["error"]["field"]) == (422, "environment")
