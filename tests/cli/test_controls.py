"""``rollback``, ``unveto`` and ``cancel`` from the command line (local mode; remote mode is in
tests/web/test_serve.py), and ``deploy``'s warning when a block will make it wait."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import BASE_CONFIG, Project, write_project
from tests.gitrepos import commit, git

FAILING_V2 = BASE_CONFIG.replace(
    "  checks: [{name: smoke, type: fake, count: 1}]",
    "  checks: [{name: smoke, type: fake, count: 1, fail_versions: [v2]}]",
)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["rollback", "web", "--env", "production", "--reason", "r"], 1,
         "error: nothing of web runs in production: nothing to roll back"),
        (["rollback", "web", "--env", "moon", "--reason", "r"], 2,
         "error: unknown environment 'moon' (known: integration, staging, production)"),
        (["rollback", "web", "--env", "production", "--reason", " "], 1, "error: a reason is required to roll back"),
        (["unveto", "web", "v9", "--env", "staging", "--reason", "r"], 1,
         "error: no release 'v9' of web (see: conveyor history web)"),
        (["cancel", "--reason", "r"], 2, "error: name an app, or a deployment with --deployment ID"),
        (["cancel", "web", "--deployment", "1", "--reason", "r"], 2,
         "error: name an app or a deployment (--deployment ID), not both"),
        (["cancel", "web", "--reason", "r"], 1, "error: nothing to cancel: web has no queued or running deployment"),
        (["cancel", "--deployment", "7", "--reason", "r"], 1, "error: no deployment #7"),
        (["cancel", "nope", "--reason", "r"], 2, "error: unknown app 'nope' (known: web, api)"),
    ],
)  # fmt: skip
def test_wrong_input_is_one_line_and_a_non_zero_exit(
    project: Project, args: list[str], code: int, message: str
) -> None:
    result = project.run(*args)
    assert (result.exit_code, result.stderr.splitlines()) == (code, [message])


def test_reason_is_required(project: Project) -> None:
    for args in (["rollback", "web", "--env", "production"], ["cancel", "web"]):
        result = project.run(*args)
        assert result.exit_code == 2 and "--reason" in result.stderr


def _two_releases(p: Project) -> None:
    git(p.repo("web"), "tag", "v1")
    p.ok("release", "web")
    p.work()
    commit(p.repo("web"), {"app.py": "print('web 2')\n"}, "web 2")
    git(p.repo("web"), "tag", "v2")
    p.ok("release", "web")
    p.work()


def test_rollback_then_status_why_history_and_unveto(project: Project) -> None:
    _two_releases(project)
    out = project.ok("rollback", "web", "--env", "production", "--reason", "bad gateway").stdout
    assert out.startswith("deployment #") and "rolls web back to v1 in production; v2 is vetoed there" in out
    project.work()
    (web,) = json.loads(project.ok("status", "web", "--json").stdout)["apps"]
    production = web["environments"]["production"]
    assert (production["current"], production["health"], production["last_good"]) == ("v1", "healthy", "v1")
    assert [(h["kind"], h["release"]) for h in web["holds"]] == [("veto", "v2")]
    assert "vetoed: v2" in project.ok("status").stdout
    why = json.loads(project.ok("why", "web", "production", "--json").stdout)
    assert "v2 vetoed: rolled back by cli" in why["environments"]["production"]["explanation"]
    history = json.loads(project.ok("history", "web", "--json").stdout)["deployments"]
    assert [(d["release"], d["override"], d["current"]) for d in history if d["environment"] == "production"] == [
        ("v1", "rollback", True),
        ("v2", None, False),
        ("v1", None, False),
    ]
    assert project.ok("unveto", "web", "v2", "--env", "production", "--reason", "fixed").stdout.strip() == (
        "web v2 may go to production again"
    )


def test_deploying_an_older_release_into_a_blocked_environment_warns_and_points_at_rollback(tmp_path: Path) -> None:
    project = write_project(tmp_path, FAILING_V2)
    git(project.repo("web"), "tag", "v1")
    project.ok("release", "web")
    project.work()
    commit(project.repo("web"), {"app.py": "print('web 2')\n"}, "web 2")
    git(project.repo("web"), "tag", "v2")
    project.ok("release", "web")
    project.work()  # v2 fails its checks in integration: blocked there
    result = project.ok("deploy", "web", "v1", "--to", "integration")
    assert result.stdout.strip().endswith("of web v1 to integration queued")
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("warning: it will wait: blocked since")
    assert warning.endswith("run: conveyor rollback web --env integration --to v1 --reason ...")
