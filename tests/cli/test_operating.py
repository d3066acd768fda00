"""``promote``, ``deploy`` and ``unblock``: what an operator asks of a running pipeline."""

from __future__ import annotations

import json

import pytest

from conveyor.cli.audit import cli_actor
from tests.cli.conftest import BASE_CONFIG, Project
from tests.gitrepos import commit, git


def environment(p: Project, app: str, env: str) -> dict[str, str | None]:
    data = json.loads(p.ok("status", app, "--json").output)
    state: dict[str, str | None] = data["apps"][0]["environments"][env]
    return state


# -- promote (the manual tier's gate) ----------------------------------------------------------------


def test_promote_takes_the_manual_tier_to_production(project: Project) -> None:
    project.ok("release", "api")
    project.work()
    waiting = environment(project, "api", "production")
    label = environment(project, "api", "staging")["release"]
    assert (waiting["state"], waiting["awaiting_promotion"]) == (None, label)
    assert environment(project, "api", "staging")["awaiting_promotion"] is None
    assert f"⏸ {label} awaits promote" in project.ok("status").output

    promoted = project.ok("promote", "api")
    assert promoted.output.strip().endswith(f"of api {label} to production queued (promoted)")
    assert environment(project, "api", "production")["awaiting_promotion"] is None  # queued: not waiting
    project.work()
    production = environment(project, "api", "production")
    assert production["state"] == "succeeded"
    assert production["sha"] == project.head("api")
    assert production["awaiting_promotion"] is None
    assert "awaits promote" not in project.ok("status").output

    again = project.run("promote", "api")
    assert again.exit_code == 1
    assert again.stderr.splitlines() == ["error: nothing to promote for api: every environment has its newest release"]


def test_status_marks_a_newer_release_waiting_behind_the_live_one(project: Project) -> None:
    project.ok("release", "api")
    project.work()
    project.ok("promote", "api")
    project.work()
    commit(project.repo("api"), {"app.py": "print('api 2')\n"}, "api: second")
    project.ok("release", "api")
    project.work()
    production = environment(project, "api", "production")
    newer = environment(project, "api", "staging")["release"]
    assert production["state"] == "succeeded" and production["release"] != newer
    assert production["awaiting_promotion"] == newer
    assert f"⏸ {newer} awaits promote" in project.ok("status", "api").output


def test_promote_with_nothing_released_is_refused(project: Project) -> None:
    result = project.run("promote", "api")
    assert result.exit_code == 1
    assert "nothing to promote for api" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--to", "integration"], 1, "error: integration is the first environment; cut a release instead"),
        (["--to", "production"], 1, "error: no release of api has passed staging yet"),
        (["--to", "moon"], 2, "error: unknown environment 'moon' (known: integration, staging, production)"),
    ],
)
def test_promote_refusals(project: Project, args: list[str], code: int, message: str) -> None:
    result = project.run("promote", "api", *args)
    assert result.exit_code == code
    assert result.stderr.splitlines() == [message]


def test_promote_of_an_unknown_app_is_exit_2(project: Project) -> None:
    result = project.run("promote", "nope")
    assert result.exit_code == 2
    assert "unknown app 'nope'" in result.stderr


# -- deploy -----------------------------------------------------------------------------------------


def test_deploy_by_label(project: Project) -> None:
    git(project.repo("api"), "tag", "v1.0")
    project.ok("release", "api")
    project.work()  # the manual tier stops before production
    queued = project.ok("deploy", "api", "v1.0", "--to", "production")
    assert queued.output.strip().endswith("of api v1.0 to production queued")
    project.work()
    production = environment(project, "api", "production")
    assert (production["release"], production["state"]) == ("v1.0", "succeeded")


def test_deploy_by_sha_prefix(project: Project) -> None:
    sha = project.head("web")
    git(project.repo("web"), "tag", "v2.0")
    project.ok("release", "web")
    queued = project.ok("deploy", "web", sha[:8], "--to", "staging")
    assert queued.output.strip().endswith("of web v2.0 to staging queued")  # the release it found, not the prefix
    rows = json.loads(project.ok("history", "web", "--json").output)["deployments"]
    assert [(r["environment"], r["sha"], r["created_by"]) for r in rows] == [
        ("staging", sha, cli_actor()),
        ("integration", sha, cli_actor()),
    ]
    project.work()
    assert environment(project, "web", "staging")["state"] == "succeeded"


def test_deploy_of_an_older_release_rolls_back(project: Project) -> None:
    web = project.repo("web")
    git(web, "tag", "v1.0")
    project.ok("release", "web")
    project.work()
    commit(web, {"app.py": "print('web 2')\n"}, "web: second commit")
    git(web, "tag", "v2.0")
    project.ok("release", "web")
    project.work()
    assert environment(project, "web", "production")["release"] == "v2.0"

    project.ok("deploy", "web", "v1.0", "--to", "production")
    project.work()
    production = environment(project, "web", "production")
    assert (production["release"], production["state"]) == ("v1.0", "succeeded")
    assert environment(project, "web", "staging")["release"] == "v2.0"  # only where it was asked


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["v9", "--to", "staging"], 1, "error: no release 'v9' of web (see: conveyor history web)"),
        (["abc", "--to", "staging"], 1, "error: no release 'abc' of web (see: conveyor history web)"),
        (
            ["v1.0", "--to", "moon"],
            2,
            "error: unknown environment 'moon' (known: integration, staging, production)",
        ),
    ],
)
def test_deploy_refusals(project: Project, args: list[str], code: int, message: str) -> None:
    git(project.repo("web"), "tag", "v1.0")
    project.ok("release", "web")
    result = project.run("deploy", "web", *args)
    assert result.exit_code == code
    assert result.stderr.splitlines() == [message]


def test_deploy_needs_a_target_environment(project: Project) -> None:
    result = project.run("deploy", "web", "v1.0")
    assert result.exit_code == 2
    assert "Missing option '--to'" in result.output


# -- unblock -----------------------------------------------------------------------------------------


@pytest.fixture
def blocked(project: Project) -> Project:
    """web's first release fails in staging (the fake driver fails it there), which blocks web."""
    sha = project.head("web")
    project.config.write_text(
        BASE_CONFIG.replace(
            "web: {repo: ./repos/web, team: publishing, groups: [router]}",
            "web:\n"
            "    repo: ./repos/web\n"
            "    team: publishing\n"
            "    groups: [router]\n"
            "    environments:\n"
            f"      staging: {{deploy: {{driver: fake, fail_versions: ['{sha[:8]}']}}}}\n",
        )
    )
    project.ok("release", "web")
    project.work()
    return project


def test_a_failure_blocks_and_why_says_so(blocked: Project) -> None:
    assert environment(blocked, "web", "integration")["state"] == "succeeded"
    assert environment(blocked, "web", "staging")["state"] == "failed"
    why = blocked.ok("why", "web").output
    assert "staging: [failed] blocked since" in why
    assert "      its log: conveyor logs web --env staging" in why.splitlines()
    assert "hold #" in why
    assert "blocked" in blocked.ok("status", "web").output
    holds = json.loads(blocked.ok("why", "web", "--json").output)["holds"]
    assert [(h["kind"], h["environment"]) for h in holds] == [("block", "staging")]


def test_unblock_lifts_the_block(blocked: Project) -> None:
    lifted = blocked.ok("unblock", "web", "--env", "staging", "--reason", "fake driver was misconfigured")
    assert lifted.output.strip() == "lifted 1 block(s) on web"
    why = blocked.ok("why", "web").output
    assert "blocked" not in why
    assert "hold #" not in why
    assert json.loads(blocked.ok("why", "web", "--json").output)["holds"] == []

    again = blocked.run("unblock", "web", "--env", "staging", "--reason", "again")
    assert again.exit_code == 1
    assert again.stderr.splitlines() == ["error: web is not blocked in staging"]


def test_unblock_without_env_lifts_every_block_of_the_app(blocked: Project) -> None:
    lifted = blocked.ok("unblock", "web", "--reason", "looked into it")
    assert lifted.output.strip() == "lifted 1 block(s) on web"


def test_unblock_needs_a_reason(blocked: Project) -> None:
    result = blocked.run("unblock", "web", "--env", "staging")
    assert result.exit_code == 2
    assert "Missing option '--reason'" in result.output
    blank = blocked.run("unblock", "web", "--env", "staging", "--reason", "  ")
    assert blank.exit_code == 1
    assert blank.stderr.splitlines() == ["error: a reason is required to unblock"]
    assert "hold #" in blocked.ok("why", "web").output


def test_unblock_when_not_blocked_is_refused(project: Project) -> None:
    result = project.run("unblock", "web", "--reason", "just in case")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["error: web is not blocked"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--reason", "r"], "error: unknown app 'nope' (known: web, api)"),
        (
            ["web", "--env", "moon", "--reason", "r"],
            "error: unknown environment 'moon' (known: integration, staging, production)",
        ),
    ],
)
def test_unblock_unknown_names_are_exit_2(project: Project, args: list[str], message: str) -> None:
    result = project.run("unblock", *args)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [message]
