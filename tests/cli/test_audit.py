"""``conveyor audit`` and ``conveyor audit verify`` on a project's own SQLite database: the operator actions
that release, deploy, promote and unblock record (actor ``cli:<user>``, reason), the filters, and a row
edited with sqlite3 behind conveyor's back named by ``verify``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conveyor.cli.audit import cli_actor
from conveyor.cli.main import cli
from conveyor.config import load_config
from tests.cli.conftest import BASE_CONFIG, Project, write_project

FAILING_STAGING = BASE_CONFIG.replace(
    "web: {repo: ./repos/web, team: publishing, groups: [router]}",
    "web:\n"
    "    repo: ./repos/web\n"
    "    team: publishing\n"
    "    environments:\n"
    "      staging: {deploy: {driver: fake, fail_versions: ['SHA']}}\n",
)


def actions(p: Project, *args: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(p.ok("audit", "--json", *args).output)["actions"]
    return found


def database(p: Project) -> Path:
    url = load_config(p.config, {}).database_url
    return Path(url.removeprefix("sqlite:///"))


@pytest.fixture
def acted(tmp_path: Path) -> Project:
    """web released and failed in staging, then unblocked; api released, promoted; web deployed by hand."""
    p = write_project(tmp_path)
    p.config.write_text(FAILING_STAGING.replace("SHA", p.head("web")[:8]))
    p.ok("release", "web", "--reason", "first cut of web")
    p.ok("release", "api")
    p.work()
    p.ok("unblock", "web", "--env", "staging", "--reason", "staging database restored")
    p.ok("promote", "api", "--reason", "change window CHG-1234")
    p.ok("deploy", "web", p.head("web")[:8], "--to", "integration")
    return p


def test_every_operator_action_is_listed_newest_first_with_actor_and_reason(acted: Project) -> None:
    found = actions(acted)
    assert [(a["action"], a["app"], a["environment"], a["reason"]) for a in found] == [
        ("deploy", "web", "integration", None),
        ("promote", "api", "production", "change window CHG-1234"),
        ("unblock", "web", "staging", "staging database restored"),
        ("release", "api", None, None),
        ("release", "web", None, "first cut of web"),
    ]
    assert {a["actor"] for a in found} == {cli_actor()}
    assert cli_actor().startswith("cli:") and len(cli_actor()) > len("cli:")
    assert [a["kind"] for a in found] == [
        "deployment.created",
        "deployment.created",
        "hold.lifted",
        "release.created",
        "release.created",
    ]


def test_the_table_shows_who_what_where_and_why(acted: Project) -> None:
    result = acted.run("audit", env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    table = result.output
    assert "operator actions, newest first" in table
    for word in (cli_actor(), "promote", "change window CHG-1234", "staging database restored"):
        assert word in table


def test_filters(acted: Project) -> None:
    assert {a["app"] for a in actions(acted, "--app", "api")} == {"api"}
    assert actions(acted, "--since", "2099-01-01") == []
    assert len(actions(acted, "--since", "1h")) == 5
    assert [a["action"] for a in actions(acted, "--limit", "2")] == ["deploy", "promote"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--since", "yesterday"],
            2,
            "error: --since 'yesterday' is not a time: give ISO 8601 (2026-12-24T18:00Z, or a date) "
            "or a span (30m, 2h, 1d, 1w)",
        ),
        (["--app", "nope"], 2, "error: unknown app 'nope' (known: web, api)"),
    ],
)
def test_wrong_input_is_one_line(project: Project, args: list[str], code: int, message: str) -> None:
    project.ok("db", "upgrade")
    result = project.run("audit", *args)
    assert (result.exit_code, result.stderr.splitlines()) == (code, [message])


def test_an_untouched_trail_verifies(acted: Project) -> None:
    result = acted.ok("audit", "verify")
    assert result.output.startswith("verified ")
    assert ": the chain is intact (head " in result.output
    answer = json.loads(acted.ok("audit", "verify", "--json").output)
    assert answer["ok"] is True and answer["verified"] == answer["head"]["seq"] > 5


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET reason = 'nobody asked' WHERE id = ?",
        'UPDATE events SET payload = \'{"hold_id": 1, "kind": "freeze"}\' WHERE id = ?',
        "DELETE FROM events WHERE id = ? - 1",
    ],
    ids=["reason", "payload", "deleted"],
)
def test_a_row_changed_in_the_database_is_named(acted: Project, statement: str) -> None:
    unblock = next(a for a in actions(acted) if a["action"] == "unblock")
    with sqlite3.connect(database(acted)) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        assert conn.execute(statement, (unblock["id"],)).rowcount == 1
    result = acted.run("audit", "verify")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"chain broken at event #{unblock['id']} (hold.lifted at ")
    assert len(result.stderr.splitlines()) == 1
    answer = json.loads(acted.run("audit", "verify", "--json").output)
    assert (answer["ok"], answer["broken"]["event_id"]) == (False, unblock["id"])


def test_a_reason_of_only_spaces_is_no_reason(project: Project) -> None:
    project.ok("release", "web", "--reason", "   ")
    assert actions(project)[0]["reason"] is None
    result = project.run("unblock", "web", "--reason", "  ")
    assert (result.exit_code, result.stderr.splitlines()) == (1, ["error: a reason is required to unblock"])


def test_options_given_before_verify_apply_to_it(acted: Project) -> None:
    result = acted.runner.invoke(
        cli, ["audit", "-c", str(acted.config), "--json", "verify"], env={"CONVEYOR_DATABASE_URL": None}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True


def test_listing_filters_do_not_go_with_verify(acted: Project) -> None:
    result = acted.run("audit", "--app", "web", "verify")
    assert (result.exit_code, result.stderr.splitlines()) == (
        2,
        ["error: `conveyor audit verify` checks every event and takes no --app"],
    )


def test_verify_holds_the_chain_to_a_kept_head(acted: Project) -> None:
    head = json.loads(acted.ok("audit", "verify", "--json").output)["head"]
    acted.ok("release", "web", "--reason", "again")  # nothing new: records nothing
    acted.ok("deploy", "web", acted.head("web")[:8], "--to", "staging", "--reason", "later")
    assert acted.ok("audit", "verify", "--expect", f"{head['seq']}:{head['hash']}").output.startswith("verified ")
    wrong = acted.run("audit", "verify", "--expect", f"{head['seq']}:{'0' * 64}")
    assert wrong.exit_code == 1
    assert "the chain no longer has the expected hash" in wrong.stderr
    bad = acted.run("audit", "verify", "--expect", "latest")
    assert (bad.exit_code, bad.stderr.splitlines()) == (
        2,
        ["error: invalid anchor 'latest': give POSITION:SHA256, as `conveyor audit verify` prints the head"],
    )


def test_the_hold_controls_are_operator_actions_too(project: Project) -> None:
    project.ok("release", "api")  # queued for integration: something to cancel
    project.ok("cancel", "api", "--reason", "wrong commit")
    project.ok("block", "web", "--env", "staging", "--reason", "schema change")
    project.ok("unblock", "web", "--env", "staging", "--reason", "schema change done")
    project.ok("freeze", "--env", "production", "--reason", "year-end")
    project.ok("stop", "--env", "staging", "--reason", "incident 42")
    for hold in json.loads(project.ok("holds", "--json").output)["holds"]:
        project.ok("unfreeze", str(hold["id"]), "--reason", "over")
    found = [(a["action"], a["environment"], a["reason"]) for a in actions(project)]
    assert found == [
        ("unfreeze", "staging", "over"),
        ("unfreeze", "production", "over"),
        ("stop", "staging", "incident 42"),
        ("freeze", "production", "year-end"),
        ("unblock", "staging", "schema change done"),
        ("block", "staging", "schema change"),
        ("cancel", "integration", "wrong commit"),
        ("release", None, None),
    ]
    assert {a["actor"] for a in actions(project)} == {cli_actor()}
    assert project.ok("audit", "verify").output.startswith("verified ")
