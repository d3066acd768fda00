"""``worker``, ``status``, ``history`` and ``why`` on a project where web reached production and api (manual
tier) waits for promotion. The project is built once for this module; these tests only read it."""

from __future__ import annotations

import json

import pytest

from conveyor.cli.audit import cli_actor
from tests.cli.conftest import Project

ENVIRONMENTS = ["integration", "staging", "production"]


def test_the_worker_brought_web_to_production(delivered: Project) -> None:
    apps = json.loads(delivered.ok("status", "--json").output)["apps"]
    web = next(a for a in apps if a["name"] == "web")
    assert {env: st["state"] for env, st in web["environments"].items()} == dict.fromkeys(ENVIRONMENTS, "succeeded")


def test_status_json_has_apps_environments_release_sha_and_state(delivered: Project) -> None:
    data = json.loads(delivered.ok("status", "--json").output)
    assert list(data) == ["apps", "stops"]
    assert data["stops"] == []
    assert [a["name"] for a in data["apps"]] == ["web", "api"]
    web_sha = delivered.head("web")
    for app in data["apps"]:
        assert list(app["environments"]) == ENVIRONMENTS
        for env in app["environments"].values():
            assert {"release", "sha", "state"} <= set(env)
    web = data["apps"][0]["environments"]
    assert web["production"]["release"] == "v1.0"
    assert web["production"]["sha"] == web_sha
    api = data["apps"][1]["environments"]
    assert api["staging"]["state"] == "succeeded"
    assert api["production"] == {**api["production"], "release": None, "sha": None, "state": None}


def test_status_table_shows_apps_tiers_and_environments(delivered: Project) -> None:
    out = delivered.ok("status").output
    assert "conveyor status" in out
    for word in ["web", "api", "auto", "manual", *ENVIRONMENTS, "v1.0", "succeeded"]:
        assert word in out
    assert "—" in out  # api has nothing in production yet


def test_status_of_one_app(delivered: Project) -> None:
    data = json.loads(delivered.ok("status", "api", "--json").output)
    assert [a["name"] for a in data["apps"]] == ["api"]
    assert data["apps"][0]["tier"] == "manual"
    table = delivered.ok("status", "api").output
    assert "api" in table
    assert "web" not in table


def test_status_of_an_unknown_app_is_exit_2(delivered: Project) -> None:
    result = delivered.run("status", "nope")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: unknown app 'nope' (known: web, api)"]


def test_history_lists_deployments_newest_first(delivered: Project) -> None:
    table = delivered.ok("history", "web").output
    assert "history of web" in table
    for env in ENVIRONMENTS:
        assert env in table
    data = json.loads(delivered.ok("history", "web", "--json").output)
    assert data["app"] == "web"
    rows = data["deployments"]
    assert [r["environment"] for r in rows] == ["production", "staging", "integration"]
    assert [r["deployment_id"] for r in rows] == sorted((r["deployment_id"] for r in rows), reverse=True)
    assert {r["release"] for r in rows} == {"v1.0"}
    assert rows[-1]["created_by"] == cli_actor()  # the release command queued the first deployment
    assert rows[0]["commits"] == ["web: first commit"]


def test_history_limit(delivered: Project) -> None:
    data = json.loads(delivered.ok("history", "web", "--json", "--limit", "1").output)
    assert [r["environment"] for r in data["deployments"]] == ["production"]
    assert delivered.run("history", "web", "--limit", "0").exit_code == 2


def test_history_of_an_unknown_app_is_exit_2(delivered: Project) -> None:
    result = delivered.run("history", "nope")
    assert result.exit_code == 2
    assert "unknown app 'nope'" in result.stderr


def test_why_explains_every_environment(delivered: Project) -> None:
    out = delivered.ok("why", "web").output
    assert out.splitlines()[0] == "web (tier auto)"
    for env in ENVIRONMENTS:
        assert f"  {env}: [succeeded] " in out


def test_why_of_one_environment(delivered: Project) -> None:
    out = delivered.ok("why", "web", "staging").output
    assert "staging: [succeeded]" in out
    assert "production" not in out
    data = json.loads(delivered.ok("why", "web", "staging", "--json").output)
    assert list(data["environments"]) == ["staging"]


def test_why_takes_the_environment_as_env_too(delivered: Project) -> None:
    """``--env`` as freeze, logs and the others spell it; both spellings at once must agree."""
    assert delivered.ok("why", "web", "--env", "staging").output == delivered.ok("why", "web", "staging").output
    result = delivered.run("why", "web", "staging", "--env", "production")
    assert result.exit_code == 2
    assert "two environments given: 'staging' and --env 'production'" in result.stderr
    assert delivered.run("why", "web", "--env", "moon").stderr.strip() == (
        "error: unknown environment 'moon' (known: integration, staging, production)"
    )


def test_why_json_carries_decision_and_explanation(delivered: Project) -> None:
    data = json.loads(delivered.ok("why", "web", "--json").output)
    assert data["app"] == "web"
    assert data["tier"] == "auto"
    assert data["holds"] == []
    assert list(data["environments"]) == ENVIRONMENTS
    production = data["environments"]["production"]
    assert production["state"] == "succeeded"
    assert production["release"] == "v1.0"
    assert production["explanation"]
    assert production["decision"]["verdict"]


def test_why_says_the_manual_tier_waits_for_promotion(delivered: Project) -> None:
    out = delivered.ok("why", "api", "production").output
    assert "manual tier" in out
    assert "runs migrations by hand" in out
    assert "conveyor promote api" in out
    data = json.loads(delivered.ok("why", "api", "production", "--json").output)
    decision = data["environments"]["production"]["decision"]
    assert decision["rule"] == "ManualTierWaitsForPromotion"
    assert decision["verdict"] == "wait"


@pytest.mark.parametrize("args", [["why", "web", "moon"], ["why", "nope"], ["why", "nope", "staging"]])
def test_why_with_an_unknown_name_is_exit_2(delivered: Project, args: list[str]) -> None:
    result = delivered.run(*args)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: unknown ")


def test_why_for_an_unknown_environment_names_the_known_ones(delivered: Project) -> None:
    result = delivered.run("why", "web", "moon")
    assert result.stderr.strip() == ("error: unknown environment 'moon' (known: integration, staging, production)")


def test_output_to_a_pipe_is_not_cut_to_80_columns(delivered: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    table = delivered.ok("status").output.splitlines()
    web = next(line for line in table if line.startswith("│ web "))
    assert len(web) > 80
    assert web.count("v1.0 succeeded") == 3  # every environment's cell on the app's one line
    why = delivered.ok("why", "api", "production").output
    sentence = next(line for line in why.splitlines() if "waiting for promotion" in line)
    assert sentence.rstrip().endswith("run: conveyor promote api --to production")


def test_columns_still_sets_the_width(delivered: Project) -> None:
    narrow = delivered.run("status", env={"COLUMNS": "60"})
    assert max(len(line) for line in narrow.output.splitlines()) <= 60
