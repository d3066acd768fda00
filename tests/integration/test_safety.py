"""Nothing the outside world writes reaches a shell (invariant 4), end to end through the CLI.

A commit whose message is full of shell syntax, on a branch whose name is the most hostile one git
accepts, is released with ``conveyor release --ref`` and deployed everywhere by the ``command`` driver
running a small script. The message is stored and shown verbatim; the script sees the version and SHA as
environment variables; and none of the files the hostile text tries to create ever exists.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.store.database import Database
from conveyor.store.tables import Release
from tests.gitrepos import git
from tests.integration.harness import make_app_repo, run_cli, write_config

DEPLOY_SCRIPT = """\
import os
import sys

with open(sys.argv[1], "a", encoding="utf-8") as out:
    env = os.environ
    out.write(f"{env['CONVEYOR_ENV']} {env['CONVEYOR_VERSION']} {env['CONVEYOR_SHA']}\\n")
"""


def hostile_message(marker: Path) -> str:
    return (
        f"Fix $(touch {marker}) and `touch {marker}`; touch {marker} && echo 'single' \"double\" | cat\n"
        "\n"
        f"Body $(touch {marker}) ; `touch {marker}` || touch {marker}\n"
        f"  ${{IFS}} $HOME \\n 'unbalanced \"quotes > {marker}\n"
    )


def hostile_branch(marker: Path) -> str:
    """The shell-like branch name git accepts (it refuses spaces, so ``${IFS}`` stands in for one)."""
    name = f"feature/$(touch${{IFS}}{marker});`touch${{IFS}}{marker}`'\"|&<>!"
    accepted = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, check=False)
    assert accepted.returncode == 0, f"git refuses {name!r}: {accepted.stderr!r}"
    return name


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_hostile_commit_text_and_branch_names_never_reach_a_shell(tmp_path: Path) -> None:
    message_marker = tmp_path / "pwned-by-message"
    branch_marker = tmp_path / "pwned-by-branch"
    repo = tmp_path / "repos" / "web"
    make_app_repo(repo)
    branch = hostile_branch(branch_marker)
    message = hostile_message(message_marker)
    git(repo, "checkout", "-q", "-b", branch)
    (repo / "change.txt").write_text("change\n")
    git(repo, "add", "change.txt")
    git(repo, "commit", "-q", "--cleanup=verbatim", "-m", message)
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")

    script = tmp_path / "deploy.py"
    script.write_text(DEPLOY_SCRIPT)
    deployed = tmp_path / "deployed.txt"
    write_config(
        tmp_path,
        f"""\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: command, argv: ["{sys.executable}", "{script}", "{deployed}"], timeout: 30}}
  checks: []
apps:
  web: {{repo: ./repos/web, team: publishing}}
""",
    )

    released = run_cli("release", "web", "--ref", branch, "-c", "conveyor.yaml", cwd=tmp_path)
    assert released.returncode == 0, released.stderr + released.stdout
    worker = run_cli("worker", "-c", "conveyor.yaml", "--exit-when-idle", "--quiet", cwd=tmp_path)
    assert worker.returncode == 0, worker.stderr + worker.stdout
    shown = run_cli("history", "web", "--json", "-c", "conveyor.yaml", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr

    db = Database(f"sqlite:///{tmp_path / 'conveyor.db'}")
    try:
        with db.read() as session:
            release = session.scalars(select(Release).where(Release.sha == sha)).one()
        assert release.ref == branch
        stored = release.commits[-1]
        assert stored["sha"] == sha
        assert stored["message"] == message, "the commit message was not kept verbatim"
        assert stored["subject"] == message.splitlines()[0]
    finally:
        db.dispose()

    history = json.loads(shown.stdout)
    assert [d["environment"] for d in history["deployments"]] == ["production", "staging", "integration"]
    assert {d["state"] for d in history["deployments"]} == {"succeeded"}
    assert all(d["sha"] == sha and message.splitlines()[0] in d["commits"] for d in history["deployments"])

    lines = deployed.read_text().splitlines()
    assert lines == [f"{env} {release.label} {sha}" for env in ("integration", "staging", "production")]
    assert not message_marker.exists(), "a commit message reached a shell"
    assert not branch_marker.exists(), "a branch name reached a shell"
    assert sorted(p.name for p in tmp_path.iterdir() if "pwned" in p.name) == []
