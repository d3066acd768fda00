"""The intake's rules one by one: paths, truncated pushes completed by the compare API, supersede, CI
timeout, and what status and the API show of candidates waiting."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conveyor import views
from conveyor.clock import utc_now
from conveyor.github.chores import work_deliveries
from conveyor.github.client import GitHubClient
from conveyor.github.intake import Intake
from conveyor.store.tables import Candidate, CiResult, Decision, Event
from tests.github.conftest import TOKEN, Hooked, hooked
from tests.github.standin import GitHubStandIn, Scripted
from tests.gitrepos import git, head, make_repo

CONFIG = """\
teams: {publishing: {}}
defaults:
  deploy: {driver: fake}
github:
  webhook_secret: ${GITHUB_WEBHOOK_SECRET}
apps:
  web:
    repo: ./repos/web
    github: acme/mono
    team: publishing
    paths: [services/web/**]
    ci: {required: [test, lint], timeout: 30m}
  api:
    repo: ./repos/web
    github: acme/mono
    team: publishing
    paths: [services/api/**]
    ci: none
"""


class Clock:
    """Real time, moved ahead by ``ahead`` (the hook records deliveries at real time)."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def __call__(self) -> Any:
        return utc_now() + self.ahead


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hook(tmp_path: Path, db_url: str, clock: Clock) -> Iterator[Hooked]:
    yield from hooked(tmp_path, db_url, CONFIG, clock)


def push(sha: str, files: list[str], *, commits: int = 1, before: str = "a" * 40) -> dict[str, Any]:
    listed = [
        {
            "id": f"{n:040x}" if n < commits - 1 else sha,
            "message": f"change {n}",
            "author": {"name": "A User", "email": "user@example.org", "username": "a-user"},
            "added": [],
            "modified": files,
            "removed": [],
        }
        for n in range(commits)
    ]
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": sha,
        "compare": f"https://github.com/acme/mono/compare/{before[:12]}...{sha[:12]}",
        "commits": listed,
        "repository": {"full_name": "acme/mono", "html_url": "https://github.com/acme/mono"},
    }


def states(hook: Hooked) -> list[tuple[str, str, str]]:
    with hook.db.read() as session:
        return [(c.app, c.sha[:4], c.state) for c in session.scalars(select(Candidate).order_by(Candidate.id))]


def test_paths_pick_the_apps_a_push_concerns(hook: Hooked) -> None:
    hook.post("push", push("1" * 40, ["services/web/app.py"]))
    hook.post("push", push("2" * 40, ["services/api/app.py", "README.md"]))
    hook.post("push", push("3" * 40, ["README.md"]))
    hook.work()
    assert states(hook) == [("web", "1111", "waiting"), ("api", "2222", "released")]
    notes = [d.note for d in hook.deliveries()]
    assert notes[2] == "web: 3333333 touches none of services/web/**; api: 3333333 touches none of services/api/**"
    assert [d.state for d in hook.deliveries()] == ["done", "done", "ignored"]


def test_a_newer_push_supersedes_the_candidate_still_waiting(hook: Hooked) -> None:
    hook.post("push", push("1" * 40, ["services/web/a.py"]))
    hook.work()
    hook.post("push", push("2" * 40, ["services/web/b.py"], before="1" * 40))
    hook.work()
    assert states(hook) == [("web", "1111", "superseded"), ("web", "2222", "waiting")]
    status = views.status(hook.db, hook.config, "web")[0]
    assert [(c["sha"][:4], c["summary"]) for c in status.candidates] == [("2222", "waiting for CI: test, lint")]
    answer = hook.client.get("/api/apps/web").json()
    assert answer["candidates"][0]["sha"] == "2" * 40
    assert answer["candidates"][0]["commits"][0]["login"] == "a-user"


def test_a_candidate_without_ci_in_time_is_decided_timed_out(hook: Hooked, clock: Clock) -> None:
    hook.post("push", push("1" * 40, ["services/web/a.py"]))
    hook.work()
    status = {"sha": "1" * 40, "context": "test", "state": "success", "repository": {"full_name": "acme/mono"}}
    hook.post("status", status)
    hook.work()
    assert not hook.intake.settle_open()
    assert states(hook) == [("web", "1111", "waiting")]
    clock.ahead = timedelta(minutes=31)
    assert not hook.intake.settle_open()
    assert states(hook) == [("web", "1111", "ci_timed_out")]
    with hook.db.read() as session:
        (decision,) = session.scalars(select(Decision)).all()
    assert decision.summary == "1111111 was not released: CI timed out: no result in time (never reported: lint)"
    assert decision.rule == "CiTimedOut"
    why = views.why(hook.db, hook.config, "web")
    assert why["environments"]["integration"]["explanation"] == decision.summary
    assert why["candidate"]["state"] == "ci_timed_out"
    with hook.db.read() as session:
        (told,) = session.scalars(select(Event).where(Event.kind == "release.ci_failed")).all()
    assert told.payload["timed_out"] is True and told.payload["check"] is None
    assert told.message == f"web: {decision.summary}"
    hook.intake.settle_open()  # again: nothing more is recorded
    with hook.db.read() as session:
        assert len(session.scalars(select(Decision)).all()) == 1
        assert len(session.scalars(select(Event).where(Event.kind == "release.ci_failed")).all()) == 1


def test_a_truncated_push_is_completed_by_the_compare_api(hook: Hooked, standin: GitHubStandIn, tmp_path: Path) -> None:
    mono = tmp_path / "github" / "mono"  # GitHub's copy of acme/mono
    make_repo(mono, {"services/api/x.py": "api\n"}, "base")
    base = head(mono)
    (mono / "README.md").write_text("docs\n")
    git(mono, "add", "-A")
    git(mono, "commit", "-q", "--author", "B User <b@example.org>", "-m", "docs only")
    (mono / "services" / "web").mkdir()
    (mono / "services" / "web" / "x.py").write_text("web\n")
    git(mono, "add", "-A")
    git(mono, "commit", "-q", "--author", "C User <c@example.org>", "-m", "the web change (#12)")
    after = head(mono)
    standin.repositories["acme/mono"] = mono
    standin.logins.update({"b@example.org": "b-user", "c@example.org": "c-user"})
    reads = GitHubClient(replace(hook.config.github, api_url=standin.url, token=TOKEN))
    try:
        # GitHub lists 20 commits at most: these say nothing about services/web, the compare does
        hook.post("push", push(after, ["README.md"], commits=20, before=base))
        intake = Intake(hook.config, hook.db, hook.intake.clock, release=hook.releaser)
        work_deliveries(intake, hook.queue, reads)
        assert states(hook) == [("web", after[:4], "waiting")]
        assert standin.requests("GET", f"/repos/acme/mono/compare/{base}...{after}")
        with hook.db.read() as session:
            candidate = session.scalars(select(Candidate)).one()
        assert [(c["login"], c["pull_requests"]) for c in candidate.commits] == [("b-user", []), ("c-user", [12])]
        assert candidate.pull_requests == [{"number": 12, "url": "https://github.com/acme/mono/pull/12"}]
    finally:
        reads.close()


def test_a_login_the_compare_lacks_is_taken_from_the_push(hook: Hooked, standin: GitHubStandIn, tmp_path: Path) -> None:
    """GitHub's compare names no author for a commit whose email no account claims; the push payload's
    ``username`` for that commit is kept instead of losing it."""
    mono = tmp_path / "github" / "mono"
    make_repo(mono, {"services/web/x.py": "web\n"}, "base")
    base = head(mono)
    (mono / "services" / "web" / "y.py").write_text("more\n")
    git(mono, "add", "-A")
    git(mono, "commit", "-q", "--author", "C User <c@example.org>", "-m", "the web change")
    after = head(mono)
    standin.repositories["acme/mono"] = mono  # and no login for c@example.org: the compare says author null
    reads = GitHubClient(replace(hook.config.github, api_url=standin.url, token=TOKEN))
    try:
        hook.post("push", push(after, ["services/web/y.py"], commits=20, before=base))
        intake = Intake(hook.config, hook.db, hook.intake.clock, release=hook.releaser)
        work_deliveries(intake, hook.queue, reads)
        assert standin.requests("GET", f"/repos/acme/mono/compare/{base}...{after}")
        with hook.db.read() as session:
            candidate = session.scalars(select(Candidate)).one()
        assert [(c["sha"], c["login"]) for c in candidate.commits] == [(after, "a-user")]
    finally:
        reads.close()


def test_a_truncated_push_the_compare_api_refuses_is_taken_as_it_is(
    hook: Hooked, standin: GitHubStandIn, tmp_path: Path
) -> None:
    """A force push whose old head GitHub no longer has: the compare answers 404; the push is not lost."""
    mono = tmp_path / "github" / "mono"
    make_repo(mono, {"services/web/x.py": "web\n"}, "the web change")
    after = head(mono)
    standin.repositories["acme/mono"] = mono
    reads = GitHubClient(replace(hook.config.github, api_url=standin.url, token=TOKEN))
    try:
        hook.post("push", push(after, ["services/web/x.py"], commits=20, before="e" * 40))
        intake = Intake(hook.config, hook.db, hook.intake.clock, release=hook.releaser)
        work_deliveries(intake, hook.queue, reads)
        assert [r.status for r in standin.requests("GET", "/compare/")] == [404]
        assert states(hook) == [("web", after[:4], "waiting")]
        [delivery] = hook.deliveries()
        assert delivery.state == "done"
        assert delivery.note.startswith(f"the compare API refused eeeeeee...{after[:7]} (404); web: ")
    finally:
        reads.close()


def test_a_check_suite_whose_check_runs_github_refuses_still_counts(hook: Hooked, standin: GitHubStandIn) -> None:
    """An App without the Checks permission: reading the suite's check runs is refused (403); the suite is
    still observed and its candidate settled, and the delivery says why the runs were not read."""
    reads = GitHubClient(replace(hook.config.github, api_url=standin.url, token=TOKEN))
    sha = "5" * 40
    try:
        hook.post("push", push(sha, ["services/web/x.py"]))
        standin.script(Scripted(403, body={"message": "Resource not accessible by integration"}, path="/check-runs"))
        suite = {
            "action": "completed",
            "check_suite": {"head_sha": sha, "status": "completed", "conclusion": "success", "app": {"slug": "lint"}},
            "repository": {"full_name": "acme/mono"},
        }
        hook.post("check_suite", suite)
        intake = Intake(hook.config, hook.db, hook.intake.clock, release=hook.releaser)
        work_deliveries(intake, hook.queue, reads)
        assert [r.status for r in standin.requests("GET", "/check-runs")] == [403]
        _, delivery = hook.deliveries()
        assert delivery.state == "done"
        assert "web: could not read the CI of 5555555: GitHub answered HTTP 403" in delivery.note
        assert "Resource not accessible by integration" in delivery.note
        assert states(hook) == [("web", "5555", "waiting")]  # lint green, test not yet
        with hook.db.read() as session:
            assert [(r.name, r.state) for r in session.scalars(select(CiResult))] == [("lint", "success")]
    finally:
        reads.close()


def test_without_an_api_reader_a_truncated_push_is_taken_as_it_is(hook: Hooked) -> None:
    hook.post("push", push("c" * 40, ["services/web/x.py"], commits=20))
    hook.work()
    assert states(hook) == [("web", "cccc", "waiting")]


def test_what_each_delivery_was_about_is_listed_with_its_outcome(hook: Hooked) -> None:
    hook.post("push", push("1" * 40, ["services/web/app.py"]))
    other_branch = {**push("2" * 40, ["services/web/app.py"]), "ref": "refs/heads/master"}
    hook.post("push", other_branch)
    hook.post("push", "not a push body")
    hook.work()
    found = hook.client.get("/api/github/deliveries", params={"app": "web"}).json()["deliveries"]
    assert [(d["event"], d["repository"], d["branch"], d["sha"], d["state"]) for d in found] == [
        ("push", "acme/mono", "master", "2" * 40, "ignored"),
        ("push", "acme/mono", "main", "1" * 40, "done"),
    ]  # the unreadable one names no repository: it is listed only without --app
    assert "master" in found[0]["note"]
    everything = hook.client.get("/api/github/deliveries", params={"state": "ignored"}).json()["deliveries"]
    assert [(d["repository"], d["note"].split(":")[0]) for d in everything] == [
        (None, "unreadable push payload"),
        ("acme/mono", "push to master"),
    ]
    assert hook.client.get("/api/github/deliveries", params={"app": "nope"}).status_code == 404
    assert hook.client.get("/api/github/deliveries", params={"state": "odd"}).status_code == 422


def test_why_says_what_became_of_a_push_that_made_no_release(hook: Hooked) -> None:
    hook.post("push", {**push("2" * 40, ["services/web/app.py"]), "ref": "refs/heads/master"})
    hook.work()
    said = views.why(hook.db, hook.config, "web")["push"]
    assert said["summary"].startswith(
        "no push to main has come from GitHub; the newest push to acme/mono was to master"
    )
    assert said["summary"].endswith("is 'main' the branch to follow?")
    hook.post("push", push("3" * 40, ["README.md"]))
    hook.work()
    said = views.why(hook.db, hook.config, "web")["push"]
    assert said["summary"] == "push of 3333333 to main ignored: web: 3333333 touches none of services/web/**; " + (
        "api: 3333333 touches none of services/api/**"
    )
    assert said["delivery"]["sha"] == "3" * 40
    hook.post("push", push("4" * 40, ["services/web/app.py"], before="3" * 40))
    hook.work()
    assert views.why(hook.db, hook.config, "web")["push"] is None  # the newest push to main was taken


def test_the_deliveries_command_lists_them_and_why_prints_the_push(hook: Hooked, tmp_path: Path, db_url: str) -> None:
    from click.testing import CliRunner

    from conveyor.cli.main import cli
    from tests.github.conftest import ENVIRON

    hook.post("push", {**push("2" * 40, ["services/web/app.py"]), "ref": "refs/heads/master"})
    hook.work()
    env = {**ENVIRON, "CONVEYOR_DATABASE_URL": db_url, "COLUMNS": "200"}
    config = str(tmp_path / "conveyor.yaml")
    listed = CliRunner().invoke(cli, ["deliveries", "--app", "web", "-c", config], env=env)
    assert listed.exit_code == 0, listed.output
    assert "acme/mono master 2222222" in listed.output and "ignored" in listed.output
    unknown = CliRunner().invoke(cli, ["deliveries", "--app", "nope", "-c", config], env=env)
    assert unknown.exit_code == 2 and "unknown app 'nope'" in unknown.output
    why = CliRunner().invoke(cli, ["why", "web", "-c", config], env=env)
    assert "github: no push to main has come from GitHub" in why.output
    assert "(conveyor deliveries --app web)" in why.output


def test_the_client_reads_deliveries_from_a_server_as_the_local_command_does(hook: Hooked) -> None:
    from conveyor.github.deliveries import deliveries_for
    from conveyor.web.client import ApiClient

    hook.post("push", {**push("2" * 40, ["services/web/app.py"]), "ref": "refs/heads/master"})
    hook.work()
    api = ApiClient("http://testserver", None, transport=hook.client._transport)
    try:
        assert api.github_deliveries("web", "ignored", 10) == deliveries_for(hook.db, hook.config, "web", "ignored", 10)
        assert len(api.github_deliveries(None, None, 1)["deliveries"]) == 1
    finally:
        api.close()
