"""Refusals and listings a user reads: each says what to do next, and a reason typed with line breaks
cannot read as another row."""

from __future__ import annotations

import json

from tests.cli.conftest import Project
from tests.gitrepos import commit


def test_a_reason_with_line_breaks_stays_on_its_hold_line(project: Project) -> None:
    project.ok("freeze", "--env", "production", "--reason", "line one\n#99 stop every app: injected")
    lines = project.ok("holds").output.strip().splitlines()
    assert len(lines) == 1, lines
    assert "line one ⏎ #99 stop every app: injected" in lines[0]
    stored = json.loads(project.ok("holds", "--json").output)["holds"][0]["reason"]
    assert stored == "line one\n#99 stop every app: injected"  # kept as typed; only shown on one line


def test_unblocking_where_nothing_is_blocked_names_where_it_is(project: Project) -> None:
    project.ok("block", "web", "--env", "staging", "--reason", "by hand")
    result = project.run("unblock", "web", "--env", "production", "--reason", "x")
    assert result.exit_code == 1
    assert "web is not blocked in production (it is blocked in staging: conveyor unblock web --env staging" in (
        result.stderr
    )


def test_cancel_with_neither_an_app_nor_a_deployment_says_what_to_name(project: Project) -> None:
    result = project.run("cancel", "--reason", "x")
    assert result.exit_code != 0
    assert "name an app, or a deployment with --deployment ID" in result.stderr


def test_unfreezing_a_veto_names_the_command_that_lifts_it(project: Project) -> None:
    project.ok("release", "web")
    project.work()
    commit(project.repo("web"), {"app.py": "print('web 2')\n"}, "web 2")
    project.ok("release", "web")
    project.work()
    project.ok("rollback", "web", "--env", "production", "--reason", "bad gateway")
    veto = next(h for h in json.loads(project.ok("holds", "--json").output)["holds"] if h["kind"] == "veto")
    result = project.run("unfreeze", str(veto["id"]))
    assert result.exit_code == 1
    assert f"hold #{veto['id']} is a veto, not a freeze: lift it with conveyor unveto web {veto['release']} " in (
        result.stderr
    )
    assert "--env production --reason TEXT" in result.stderr


def test_unfreezing_a_freeze_that_already_ended_says_so(project: Project) -> None:
    import time
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    made = project.ok("freeze", "--env", "staging", "--reason", "brief", "--until", soon).output
    hold_id = made.split()[1].strip("#:")
    time.sleep(2.5)
    result = project.run("unfreeze", hold_id)
    assert result.exit_code == 1
    assert f"hold #{hold_id} already ended at" in result.stderr
