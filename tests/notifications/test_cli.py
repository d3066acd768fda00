"""``conveyor notifications``: deliveries newest first; ``--failed``, ``--limit`` and ``--json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from conveyor.cli.main import cli
from conveyor.clock import utc_now
from conveyor.store.database import Database
from conveyor.store.tables import Outbox
from tests.gitrepos import make_repo

CONFIG = """\
notifiers:
  chat: {type: fake}
  audit: {type: log, global: true}
teams: {publishing: {notify: [chat]}}
defaults:
  deploy: {driver: fake}
apps:
  web: {repo: ./repos/web, team: publishing}
  api: {repo: ./repos/api, team: publishing}
"""


def conveyor(root: Path, *args: str) -> Result:
    result = CliRunner().invoke(
        cli,
        [*args, "-c", str(root / "conveyor.yaml")],
        env={"CONVEYOR_DATABASE_URL": None, "COLUMNS": "200"},
        prog_name="conveyor",
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for app in ("web", "api"):
        make_repo(tmp_path / "repos" / app, {"README": app}, f"{app}: first commit")
    (tmp_path / "conveyor.yaml").write_text(CONFIG)
    conveyor(tmp_path, "release", "web")  # release.created: to chat (the team's) and audit (global)
    conveyor(tmp_path, "release", "api")
    db = Database(f"sqlite:///{tmp_path / 'conveyor.db'}")
    with db.write() as session:
        session.execute(
            update(Outbox).where(Outbox.id == 1).values(state="delivered", attempts=1, delivered_at=utc_now())
        )
        session.execute(
            update(Outbox)
            .where(Outbox.id == 3)
            .values(state="failed", attempts=30, last_error="HTTP 500 from hooks.example.org: down")
        )
    db.dispose()
    return tmp_path


def test_lists_every_delivery_newest_first(project: Path) -> None:
    out = conveyor(project, "notifications").output
    assert "notifications, newest first" in out
    lines = [line for line in out.splitlines() if "release.created" in line]
    assert [line.split("│")[1].strip() for line in lines] == ["4", "3", "2", "1"]
    assert "HTTP 500 from hooks.example.org: down" in out
    assert "delivered" in out and "failed" in out and "pending" in out


def test_failed_lists_only_what_was_given_up(project: Path) -> None:
    out = conveyor(project, "notifications", "--failed").output
    assert "failed notifications" in out
    rows = [line for line in out.splitlines() if "release.created" in line]
    assert len(rows) == 1 and "HTTP 500" in rows[0]


def test_json_and_limit(project: Path) -> None:
    data = json.loads(conveyor(project, "notifications", "--json", "--limit", "3").output)
    rows = data["notifications"]
    assert [r["id"] for r in rows] == [4, 3, 2]
    assert set(rows[0]) == {
        "id",
        "delivery_id",
        "event_id",
        "kind",
        "at",
        "app",
        "environment",
        "release",
        "notifier",
        "state",
        "attempts",
        "last_error",
        "next_attempt_at",
        "delivered_at",
    }
    assert [(r["app"], r["notifier"], r["state"]) for r in rows] == [
        ("api", "audit", "pending"),
        ("api", "chat", "failed"),
        ("web", "audit", "pending"),
    ]
    failed = json.loads(conveyor(project, "notifications", "--json", "--failed").output)["notifications"]
    assert [(r["id"], r["attempts"], r["last_error"]) for r in failed] == [
        (3, 30, "HTTP 500 from hooks.example.org: down")
    ]


def test_check_lists_the_notifiers(project: Path) -> None:
    assert "notifiers: chat (fake), audit (log, global)" in conveyor(project, "check").output
