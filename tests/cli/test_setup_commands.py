"""``init``, ``check`` and ``db upgrade``: getting a project to the point where it can deploy."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from click.testing import Result

from tests.cli.conftest import BASE_CONFIG, Project
from tests.gitrepos import git, make_repo

PROBLEM_LINE = re.compile(r"^(?P<file>\S+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def _problems(result: Result) -> list[re.Match[str]]:
    return [m for m in map(PROBLEM_LINE.match, result.stderr.splitlines()) if m]


def test_init_writes_a_config_that_check_accepts_once_its_repos_exist(tmp_path: Path) -> None:
    p = Project(tmp_path)
    written = p.ok("init")
    assert p.config.exists()
    assert "conveyor check" in written.output
    missing = p.run("check")
    assert missing.exit_code == 2
    problems = _problems(missing)
    assert [(m["line"], m["col"]) for m in problems] == [("38", "11"), ("48", "11")], missing.stderr
    assert problems[0]["message"] == f"repo './repos/shop' of app 'shop' does not exist ({tmp_path / 'repos/shop'})"

    make_repo(tmp_path / "repos" / "shop", {"app.py": ""})
    make_repo(tmp_path / "repos" / "search", {"app.py": ""})
    checked = p.ok("check")
    assert f"{p.config}: OK" in checked.output


def test_check_refuses_a_repo_folder_that_is_not_a_git_repository(project: Project) -> None:
    shutil.rmtree(project.repo("api") / ".git")
    result = project.run("check")
    assert result.exit_code == 2
    (problem,) = _problems(result)
    assert problem["line"] == "9"
    assert problem["message"].startswith("repo './repos/api' of app 'api' is not a git repository")


def test_check_accepts_a_bare_repository_and_a_file_url(project: Project) -> None:
    bare = project.root / "bare.git"
    git(project.root, "clone", "-q", "--bare", str(project.repo("api")), str(bare))
    project.config.write_text(
        BASE_CONFIG.replace("repo: ./repos/api", "repo: ./bare.git").replace(
            "repo: ./repos/web", f"repo: '{project.repo('web').as_uri()}'"
        )
    )
    project.ok("check")
    project.config.write_text(BASE_CONFIG.replace("repo: ./repos/web", f"repo: '{(project.root / 'gone').as_uri()}'"))
    assert "does not exist" in _problems(project.run("check"))[0]["message"]


LOCAL_CONFIG = """environments: [integration, staging, production]
teams: {publishing: {}}
defaults:
  deploy: {driver: local, start: [python3, app.py]}
apps:
  web:
    repo: ./repos/web
    team: publishing
    environments:
      integration: {vars: {port: 8101}}
      staging: {vars: {port: 8102}}
      production: {vars: {prt: 8103}}
"""


def test_check_reports_a_var_the_driver_needs_per_environment(project: Project) -> None:
    project.config.write_text(LOCAL_CONFIG)
    result = project.run("check")
    assert result.exit_code == 2
    (problem,) = _problems(result)
    assert (problem["line"], problem["col"]) == ("12", "20")
    assert problem["message"] == (
        "the local driver needs var 'port' in app 'web' environment 'production' (did you mean 'prt'?)"
        " (set vars.port in defaults, the app or the environment)"
    )


def test_check_reports_a_var_of_the_wrong_type_where_its_value_is(project: Project) -> None:
    project.config.write_text(LOCAL_CONFIG.replace("port: 8101", 'port: "99999"').replace("prt:", "port:"))
    result = project.run("check")
    assert result.exit_code == 2
    (problem,) = _problems(result)
    assert (problem["line"], problem["col"]) == ("10", "34")
    assert problem["message"] == (
        "var 'port' in app 'web' environment 'integration': input should be less than or equal to 65535"
        " (the local driver reads it)"
    )


def test_a_bad_var_in_defaults_is_one_problem_however_many_places_read_it(project: Project) -> None:
    project.config.write_text(
        "teams: {publishing: {}}\n"
        "defaults:\n"
        "  vars: {port: 0}\n"
        "  deploy: {driver: local, start: [python3, app.py]}\n"
        "apps:\n"
        "  web: {repo: ./repos/web, team: publishing}\n"
        "  api: {repo: ./repos/api, team: publishing}\n"
    )
    result = project.run("check")
    assert result.exit_code == 2, result.output
    (problem,) = _problems(result)  # not one per app and environment
    assert (problem["line"], problem["col"]) == ("3", "16")
    assert problem["message"] == (
        "var 'port' in defaults: input should be greater than or equal to 1 (the local driver reads it)"
    )


def test_a_missing_var_used_as_a_placeholder_is_one_problem(project: Project) -> None:
    checked = LOCAL_CONFIG.replace(
        "apps:", "  checks: [{name: up, type: http, url: 'http://127.0.0.1:{port}/'}]\napps:"
    )
    project.config.write_text(checked)
    result = project.run("check")
    assert result.exit_code == 2
    assert [m["message"].split(" (")[0] for m in _problems(result)] == [
        "the local driver needs var 'port' in app 'web' environment 'production'"
    ]


def test_one_misspelt_environment_is_one_problem(tmp_path: Path) -> None:
    p = Project(tmp_path)
    p.ok("init")
    p.config.write_text(
        p.config.read_text().replace("      staging: {vars: {port: 8102}}", "      stagin: {vars: {port: 8102}}")
    )
    make_repo(tmp_path / "repos" / "shop", {"app.py": ""})
    make_repo(tmp_path / "repos" / "search", {"app.py": ""})
    result = p.run("check")
    assert result.exit_code == 2
    (problem,) = _problems(result)
    assert problem["message"].startswith("unknown environment 'stagin' (did you mean 'staging'?)")


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


def test_check_says_where_each_app_hears_of_new_commits(project: Project) -> None:
    project.config.write_text(
        BASE_CONFIG.replace(
            "apps:\n",
            "public_url: https://conveyor.example.org\n"
            "github: {webhook_secret: a-webhook-secret-value, token: a-token-of-sorts}\n"
            "apps:\n  site: {repo: ./repos/web, github: acme/site, team: publishing, "
            "paths: ['site/**'], ci: {required: [test, lint]}}\n"
            "  docs: {repo: ./repos/api, team: publishing, poll: 2m}\n",
        )
    )
    out = project.ok("check").output
    assert "site: team publishing, tier auto, driver fake, from GitHub acme/site (CI test, lint, paths site/**)" in out
    assert "docs: team publishing, tier auto, driver fake, polled every 120s" in out
    assert "web: team publishing, tier auto, groups router, driver fake\n" in out
    assert "github: https://api.github.com with a token; webhooks at https://conveyor.example.org/hooks/github" in out


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
    assert "created the conveyor schema" in result.output
    again = project.ok("db", "upgrade")
    assert "up to date" in again.output


def test_db_upgrade_with_a_bad_config_exits_2(project: Project) -> None:
    project.config.write_text("environments: []\nbogus: 1\n")
    result = project.run("db", "upgrade")
    assert result.exit_code == 2
    assert not (project.root / "conveyor.db").exists()
