"""block, freeze, stop, unfreeze, holds and --force from the command line, on a real project."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from conveyor.cli.audit import cli_actor
from conveyor.config import load_config
from conveyor.store.database import Database
from conveyor.store.tables import Event, Hold
from tests.cli.conftest import Project


def state(project: Project, app: str, env: str) -> Any:
    data = json.loads(project.ok("status", app, "--json").output)
    return data["apps"][0]["environments"][env]["state"]


def why(project: Project, app: str, env: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(project.ok("why", app, env, "--json").output)["environments"][env]
    return found


def holds(project: Project) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(project.ok("holds", "--json").output)["holds"]
    return rows


def events(project: Project, kind: str) -> list[Event]:
    db = Database(load_config(project.config).database_url)
    with db.read() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


def test_a_freeze_on_production_stops_only_production_until_unfrozen(project: Project) -> None:
    made = project.ok("freeze", "--env", "production", "--reason", "quarter end")
    assert made.output.strip() == "hold #1: froze every app in production; lift it with: conveyor unfreeze 1"
    project.ok("release", "web")
    project.work()
    assert state(project, "web", "staging") == "succeeded"
    assert state(project, "web", "production") == "waiting"
    production = why(project, "web", "production")
    assert "frozen (every app in production, hold #1)" in production["explanation"]
    assert "conveyor unfreeze 1" in production["explanation"]
    assert "unblock" not in production["explanation"] and "None" not in production["explanation"]
    assert [o["kind"] for o in production["obstacles"]] == ["freeze"]
    assert why(project, "web", "staging")["obstacles"] == []
    [hold] = holds(project)
    assert (hold["kind"], hold["app"], hold["environment"], hold["lift"]) == (
        "freeze",
        None,
        "production",
        "conveyor unfreeze 1",
    )
    assert "frozen" in project.ok("status").output
    text = project.ok("why", "web", "production").output
    assert f"hold #1 (freeze, every app in production) by {cli_actor()} since" in text
    assert "lift: conveyor unfreeze 1" in text
    assert "#1 freeze every app in production since" in project.ok("holds").output

    assert project.ok("unfreeze", "1", "--reason", "quarter closed").output.strip() == (
        "lifted freeze #1 (every app in production)"
    )
    assert holds(project) == []
    project.work()
    assert state(project, "web", "production") == "succeeded"
    assert [e.payload["kind"] for e in events(project, "hold.created")] == ["freeze"]
    assert [e.message for e in events(project, "hold.lifted")] == ["quarter closed"]


def test_freeze_input_errors_are_one_line(project: Project) -> None:
    past = project.run("freeze", "--reason", "r", "--until", "2001-01-01T00:00Z")
    assert past.exit_code == 1
    assert past.stderr.splitlines() == [
        "error: --until '2001-01-01T00:00Z' is in the past (2001-01-01 00:00 UTC is before now)"
    ]
    garbage = project.run("freeze", "--reason", "r", "--until", "tomorrowish")
    assert garbage.exit_code == 1
    assert len(garbage.stderr.splitlines()) == 1 and "is not a time" in garbage.stderr
    unknown_app = project.run("freeze", "--app", "nope", "--reason", "r")
    assert unknown_app.exit_code == 2
    assert unknown_app.stderr.splitlines() == ["error: unknown app 'nope' (known: web, api)"]
    unknown_env = project.run("stop", "--env", "moon", "--reason", "r")
    assert unknown_env.exit_code == 2
    assert "unknown environment 'moon'" in unknown_env.stderr
    blank = project.run("freeze", "--reason", " ")
    assert (blank.exit_code, blank.stderr.strip()) == (1, "error: a reason is required to freeze")
    assert holds(project) == []


def test_a_relative_until_ends_the_freeze_on_its_own(project: Project) -> None:
    project.ok("freeze", "--app", "web", "--reason", "short pause", "--until", "2h")
    [hold] = holds(project)
    assert hold["until"] is not None and hold["app"] == "web"
    assert "until" in why(project, "web", "integration")["explanation"]


def test_unfreeze_refuses_unknown_ids_and_blocks(project: Project) -> None:
    unknown = project.run("unfreeze", "99")
    assert (unknown.exit_code, unknown.stderr.strip()) == (1, "error: no hold #99 (see: conveyor holds)")
    project.ok("block", "web", "--env", "staging", "--reason", "schema change pending")
    refused = project.run("unfreeze", "1")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        "error: hold #1 is a block, not a freeze: lift it with conveyor unblock web --env staging --reason TEXT"
    )
    project.ok("freeze", "--reason", "r")
    project.ok("unfreeze", "2")
    again = project.run("unfreeze", "2")
    assert again.exit_code == 1 and "already lifted" in again.stderr


def test_a_block_by_hand_stops_its_environment_and_later_ones_until_unblocked(project: Project) -> None:
    made = project.ok("block", "web", "--env", "staging", "--reason", "schema change pending")
    assert "lift it with: conveyor unblock web --env staging --reason TEXT" in made.output
    project.ok("release", "web")
    project.work()
    assert state(project, "web", "integration") == "succeeded"
    assert state(project, "web", "staging") == "waiting"
    staging = why(project, "web", "staging")["explanation"]
    assert "schema change pending" in staging and "conveyor unblock web --env staging --reason TEXT" in staging
    assert "newer" not in staging  # a block by hand is not lifted by a newer release
    assert [o["kind"] for o in why(project, "web", "production")["obstacles"]] == ["block"]
    assert why(project, "api", "staging")["obstacles"] == []
    project.ok("unblock", "web", "--env", "staging", "--reason", "schema done")
    project.work()
    assert state(project, "web", "production") == "succeeded"


def test_stop_the_line_is_a_banner_and_force_breaks_glass(project: Project) -> None:
    project.ok("release", "web")
    project.work()
    made = project.ok("stop", "--env", "production", "--reason", "incident 42")
    assert made.output.strip() == "hold #1: line stopped in production; lift it with: conveyor unfreeze 1"
    status = project.ok("status").output
    assert "LINE STOPPED in production" in status and "incident 42" in status and "conveyor unfreeze 1" in status
    stops = json.loads(project.ok("status", "--json").output)["stops"]
    assert [(s["kind"], s["environment"], s["reason"]) for s in stops] == [("stop", "production", "incident 42")]

    refused = project.run("deploy", "web", project.head("web")[:12], "--to", "production")
    assert refused.exit_code == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: web is held in production: line stopped in production (hold #1)")
    assert line.endswith("or break glass with --force --reason TEXT")

    no_reason = project.run("deploy", "web", project.head("web")[:12], "--to", "production", "--force")
    assert (no_reason.exit_code, no_reason.stderr.strip()) == (
        1,
        "error: --force needs --reason TEXT (it is recorded and notified)",
    )
    forced = project.ok(
        "deploy", "web", project.head("web")[:12], "--to", "production", "--force", "--reason", "the hotfix"
    )
    assert "(forced past holds)" in forced.output
    project.work()
    assert state(project, "web", "production") == "succeeded"
    [overridden] = events(project, "hold.overridden")
    assert overridden.actor == cli_actor() and overridden.payload["reason"] == "the hotfix"
    assert (overridden.action, overridden.reason) == ("force", "the hotfix")
    assert [p["kind"] for p in overridden.payload["passed"]] == ["stop"]
    assert "the hotfix" in overridden.message


def test_promote_is_refused_by_a_freeze_and_forced_past_it(project: Project) -> None:
    project.ok("release", "api")
    project.work()  # api is manual: it waits for a promotion to production
    project.ok("freeze", "--app", "api", "--env", "production", "--reason", "audit week")
    refused = project.run("promote", "api")
    assert refused.exit_code == 1
    assert "frozen (api in production, hold #1)" in refused.stderr and "--force" in refused.stderr
    forced = project.ok("promote", "api", "--force", "--reason", "auditors approved")
    assert "forced past holds" in forced.output
    project.work()
    assert state(project, "api", "production") == "succeeded"
    assert len(events(project, "hold.overridden")) == 1


def test_force_never_passes_a_block(project: Project) -> None:
    project.ok("release", "api")
    project.work()
    project.ok("block", "api", "--reason", "data migration broke")
    refused = project.run("promote", "api", "--force", "--reason", "try anyway")
    assert refused.exit_code == 1
    assert "blocked in every environment" in refused.stderr
    assert refused.stderr.strip().endswith("Lift: conveyor unblock api --reason TEXT (--force never passes a block)")
    assert events(project, "hold.overridden") == []


def test_holds_lists_nothing_when_none(project: Project) -> None:
    project.ok("db", "upgrade")  # a read creates nothing, so the schema comes first
    assert project.ok("holds").output.strip() == "no holds in force"


def test_a_forced_deploy_into_a_blocked_environment_is_refused_not_queued(project: Project) -> None:
    project.ok("release", "web")
    project.work()
    project.ok("block", "web", "--env", "production", "--reason", "data repair")
    version = project.head("web")[:12]
    refused = project.run("deploy", "web", version, "--to", "production", "--force", "--reason", "now")
    assert refused.exit_code == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: web is held in production: blocked since")
    assert line.endswith("(--force never passes a block)")
    assert events(project, "hold.overridden") == []


def test_a_freeze_on_staging_does_not_stop_a_promotion_to_production(project: Project) -> None:
    """It used to: the promote refusal scoped a freeze like a block, onto every later environment."""
    project.ok("release", "api")
    project.work()
    project.ok("freeze", "--env", "staging", "--reason", "staging rebuild")
    assert "queued (promoted)" in project.ok("promote", "api").output
    assert why(project, "api", "production")["obstacles"] == []


def test_an_expired_freeze_stops_nothing_and_is_not_shown(project: Project) -> None:
    """It used to stop promote and show in why: only the planner looked at until."""
    project.ok("release", "api")
    project.work()
    db = Database(load_config(project.config).database_url)
    with db.write() as session:
        long_ago = datetime(2001, 1, 1, tzinfo=UTC)
        session.add(Hold(kind="freeze", reason="old", actor="cli", since=long_ago, until=long_ago + timedelta(hours=1)))
    db.dispose()
    assert holds(project) == []
    assert why(project, "api", "production")["obstacles"] == []
    assert json.loads(project.ok("why", "api", "--json").output)["holds"] == []
    assert "queued (promoted)" in project.ok("promote", "api").output
