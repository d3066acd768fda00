"""``release``: cutting a release from an app's repository."""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import Project
from tests.gitrepos import commit, git


def test_release_cuts_a_release_heading_for_the_first_environment(project: Project) -> None:
    sha = project.head("web")
    result = project.ok("release", "web")
    assert result.output.strip() == (f"release {sha[:7]} of web ({sha[:12]}, 1 commit(s)) heads for integration")


def test_releasing_the_same_commit_again_says_nothing_new(project: Project) -> None:
    project.ok("release", "web")
    again = project.ok("release", "web")
    sha = project.head("web")
    assert again.output.strip() == f"web {sha[:7]} ({sha[:12]}) is already a release; nothing new"


def test_a_new_commit_is_a_new_release_counting_its_commits(project: Project) -> None:
    project.ok("release", "web")
    commit(project.repo("web"), {"a.txt": "a\n"}, "add a")
    commit(project.repo("web"), {"b.txt": "b\n"}, "add b")
    result = project.ok("release", "web")
    assert f"({project.head('web')[:12]}, 2 commit(s))" in result.output


def test_release_of_a_tag_is_labelled_with_the_tag(project: Project) -> None:
    tagged = project.head("web")
    git(project.repo("web"), "tag", "v1.0")
    commit(project.repo("web"), {"later.txt": "later\n"}, "after the tag")
    result = project.ok("release", "web", "--ref", "v1.0")
    assert result.output.strip() == f"release v1.0 of web ({tagged[:12]}, 1 commit(s)) heads for integration"
    history = project.ok("history", "web", "--json")
    assert '"release": "v1.0"' in history.output


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no-such-branch", "error: unknown ref 'no-such-branch': no such branch, tag or commit"),
        ("-x", "error: unknown ref '-x': a ref may not start with '-'"),
    ],
)
def test_an_unknown_ref_is_one_line_and_exit_1(project: Project, ref: str, message: str) -> None:
    result = project.run("release", "web", f"--ref={ref}")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [message]


def test_an_unknown_app_is_exit_2(project: Project) -> None:
    result = project.run("release", "nope")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: unknown app 'nope' (known: web, api)"]


def test_an_unreadable_repository_is_a_git_failure_exit_1(project: Project) -> None:
    project.config.write_text(project.config.read_text().replace("./repos/api", "./repos/missing"))
    result = project.run("release", "api")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: git ")
    assert "Traceback" not in result.output


def test_a_git_failure_is_reported_on_one_line(project: Project) -> None:
    project.ok("release", "api")  # the mirror exists; now its origin goes away
    project.repo("api").rename(project.root / "repos" / "moved")
    result = project.run("release", "api")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_release_needs_an_app(project: Project) -> None:
    result = project.run("release")
    assert result.exit_code == 2
    assert re.search(r"Missing argument 'APP'", result.output)
