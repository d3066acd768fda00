"""``init``, ``check`` and ``db upgrade``: getting a project to the point where it can deploy."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.conftest import BASE_CONFIG, Project

PROBLEM_LINE = re.compile(r"^(?P<file>\S+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def test_init_writes_a_config_that_check_accepts(tmp_path: Path) -> None:
    p = Project(tmp_path)
    written = p.ok("init")
    assert p.config.exists()
    assert "conveyor check" in written.output
    checked = p.ok("check")
    assert f"{p.config}: OK" in checked.output


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    p = Project(tmp_path)
    p.config.write_text("# mine\n")
    refused = p.run("init")
    assert refused.exit_code == 1
    assert "already exists" in refused.stderr
    assert "--force" in refused.stderr
    assert p.config.read_text() == "# mine\n"

    p.ok("init", "--force")
    assert p.config.read_text() != "# mine\n"


def test_check_summarises_apps_teams_tiers_and_groups(project: Project) -> None:
    result = project.ok("check")
    out = result.output
    assert "environments: integration → staging → production" in out
    assert "teams: publishing" in out
    assert "groups: router" in out
    assert "apps (2):" in out
    assert "web: team publishing, tier auto, groups router, driver fake" in out
    assert "api: team publishing, tier manual (runs migrations by hand), driver fake" in out


def test_check_lists_every_problem_with_its_position(project: Project) -> None:
    bad = BASE_CONFIG.replace("groups: [router]}", "groups: [router], tirr: auto}").replace(
        "team: publishing, tier: manual", "team: publishin, tier: manual"
    )
    project.config.write_text(bad)
    result = project.run("check")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    problems = [m for m in map(PROBLEM_LINE.match, lines) if m]
    assert len(problems) == 2, lines
    by_message = {m["message"]: m for m in problems}
    tirr = by_message["unknown key 'tirr' in app 'web' (did you mean 'tier'?)"]
    assert (tirr["file"], tirr["line"]) == (str(project.config), "8")
    team = next(m for msg, m in by_message.items() if msg.startswith("unknown team 'publishin'"))
    assert team["line"] == "9"
    assert "did you mean 'publishing'" in team["message"]
    assert lines[-1] == "2 problem(s) in the configuration"
    assert "Traceback" not in result.output


def test_check_of_a_missing_file_says_so(tmp_path: Path) -> None:
    result = Project(tmp_path).run("check")
    assert result.exit_code == 2
    assert "conveyor.yaml:1:1: no such file (run `conveyor init` to create one)" in result.stderr


def test_db_upgrade_creates_the_database_beside_the_config(project: Project) -> None:
    assert not (project.root / "conveyor.db").exists()
    result = project.ok("db", "upgrade")
    assert (project.root / "conveyor.db").is_file()
    assert "up to date" in result.output
    again = project.ok("db", "upgrade")
    assert "up to date" in again.output


def test_db_upgrade_with_a_bad_config_exits_2(project: Project) -> None:
    project.config.write_text("environments: []\nbogus: 1\n")
    result = project.run("db", "upgrade")
    assert result.exit_code == 2
    assert not (project.root / "conveyor.db").exists()
