"""GitHub's published payloads (``@octokit/webhooks-examples``): every one parses, and the ones about a
configured app have their effect, through the signed hook and the intake queue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conveyor.github.intake import Proposal
from conveyor.github.payloads import parse
from conveyor.store.tables import Candidate, Decision, Event
from tests.github.conftest import Hooked, hooked
from tests.github.examples import EVENTS

PUSHED = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"  # the branch push among the examples
CHECKED = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # the sha of the check run and check suite examples

CONFIG = """\
teams: {publishing: {}}
defaults:
  deploy: {driver: fake}
github:
  webhook_secret: ${GITHUB_WEBHOOK_SECRET}
apps:
  hello:
    repo: https://github.com/Codertocat/Hello-World.git
    team: publishing
    branch: master
    ci: {required: [default]}
  linter:
    repo: ./repos/web
    github: Codertocat/Hello-World
    team: publishing
    branch: changes
    ci: {required: [Octocoders-linter], timeout: 1h}
  suite:
    repo: ./repos/web
    github: codertocat/hello-world
    team: publishing
    branch: gh-pages
    ci: {required: [github-actions]}
"""


@pytest.fixture
def hook(tmp_path: Path, db_url: str) -> Iterator[Hooked]:
    yield from hooked(tmp_path, db_url, CONFIG)


def test_every_example_of_the_events_conveyor_reads_parses(examples: dict[str, list[dict[str, Any]]]) -> None:
    assert set(examples) == set(EVENTS)
    for event, payloads in examples.items():
        assert payloads, event
        for payload in payloads:
            parse(event, payload)


def candidates(hook: Hooked) -> list[tuple[str, str, str]]:
    with hook.db.read() as session:
        return [(c.app, c.sha, c.state) for c in session.scalars(select(Candidate).order_by(Candidate.id))]


def test_pushes_make_a_candidate_of_the_branch_push_and_ignore_tags_and_deletions(
    hook: Hooked, examples: dict[str, list[dict[str, Any]]]
) -> None:
    for payload in examples["push"]:
        assert hook.post("push", payload).status_code == 202
    hook.work()
    assert candidates(hook) == [("hello", PUSHED, "waiting")]
    notes = {(d.state, d.note) for d in hook.deliveries()}
    assert ("ignored", "refs/tags/simple-tag: a tag push") in notes
    assert ("ignored", "refs/tags/simple-tag was deleted") in notes
    assert ("done", "hello: 6113728 is a candidate") in notes
    assert ("done", "hello: 6113728 is already a candidate (waiting)") in notes  # the same push twice
    with hook.db.read() as session:
        candidate = session.scalars(select(Candidate)).one()
    assert candidate.commits[0]["login"] == "Codertocat"
    assert candidate.compare_url == f"https://github.com/Codertocat/Hello-World/commit/{PUSHED}"  # a new branch


def test_a_green_status_releases_the_candidate_once(hook: Hooked, examples: dict[str, list[dict[str, Any]]]) -> None:
    for payload in examples["push"]:
        hook.post("push", payload)
    hook.work()
    for payload in examples["status"]:
        assert hook.post("status", payload).status_code == 202
    hook.work()
    assert [(app, sha) for app, sha, _ in hook.releaser.calls] == [("hello", PUSHED)]
    assert candidates(hook) == [("hello", PUSHED, "released")]


def test_check_runs_fail_then_pass_a_candidate(hook: Hooked, examples: dict[str, list[dict[str, Any]]]) -> None:
    hook.intake.propose(Proposal("linter", CHECKED, "changes"))
    runs = [p for p in examples["check_run"] if p["repository"]["full_name"] == "Codertocat/Hello-World"]
    created, failed, passed = runs[0], runs[1], runs[2]
    assert (failed["check_run"]["conclusion"], passed["check_run"]["conclusion"]) == ("failure", "success")
    hook.post("check_run", created)
    hook.work()
    assert candidates(hook) == [("linter", CHECKED, "waiting")]
    hook.post("check_run", failed)
    hook.work()
    assert candidates(hook) == [("linter", CHECKED, "ci_failed")]
    assert hook.releaser.calls == []
    with hook.db.read() as session:
        (decision,) = session.scalars(select(Decision)).all()
        (event,) = session.scalars(select(Event).where(Event.kind == "release.ci_failed")).all()
    assert decision.summary == "ec26c3e was not released: CI failed: Octocoders-linter (https://octocoders.io)"
    assert (decision.app, decision.environment, decision.rule) == ("linter", "integration", "CiFailed")
    assert event.payload["check"] == "Octocoders-linter"
    hook.post("check_run", passed)  # a re-run that passed
    hook.work()
    assert candidates(hook) == [("linter", CHECKED, "released")]
    assert [(app, sha) for app, sha, _ in hook.releaser.calls] == [("linter", CHECKED)]
    others = [p for p in examples["check_run"] if p not in runs]
    for payload in others:
        hook.post("check_run", payload)
    hook.work()
    assert {d.note for d in hook.deliveries()[-len(others) :]} == {
        "no app follows electron/electron",
        "no app follows github/hello-world",
    }


def test_a_green_check_suite_releases_by_its_app(hook: Hooked, examples: dict[str, list[dict[str, Any]]]) -> None:
    hook.intake.propose(Proposal("suite", CHECKED, "gh-pages"))
    for payload in examples["check_suite"]:
        assert hook.post("check_suite", payload).status_code == 202
    hook.work()
    assert ("suite", CHECKED, "released") in candidates(hook)
    assert [(app, sha) for app, sha, _ in hook.releaser.calls] == [("suite", CHECKED)]


def test_workflow_runs_are_read_and_other_repositories_ignored(
    hook: Hooked, examples: dict[str, list[dict[str, Any]]]
) -> None:
    for payload in examples["workflow_run"]:
        assert hook.post("workflow_run", payload).status_code == 202
    hook.work()
    states = [(d.state, d.note) for d in hook.deliveries()]
    assert states[0] == ("ignored", "Manually triggered workflow: not required by any app of Codertocat/Hello-World")
    assert {s for s, _ in states[1:]} == {"ignored"}
    assert {n for _, n in states[1:]} == {"no app follows octo-org/octo-repo"}


def test_pull_requests_are_recorded_as_ignored_and_pings_answered(
    hook: Hooked, examples: dict[str, list[dict[str, Any]]]
) -> None:
    for payload in examples["pull_request"]:
        answer = hook.post("pull_request", payload)
        assert (answer.status_code, answer.json()["outcome"]) == (202, "ignored")
    for payload in examples["ping"]:
        answer = hook.post("ping", payload)
        assert (answer.status_code, answer.json()["outcome"]) == (200, "done")
    assert not hook.work()
    assert {(d.event, d.state) for d in hook.deliveries()} == {("pull_request", "ignored"), ("ping", "done")}
    assert {d.note for d in hook.deliveries() if d.event == "pull_request"} == {
        "conveyor does not use 'pull_request' events"
    }
