"""The CI gate, table by table: GitHub's words for results, the verdict on a candidate, PR numbers, paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.domain.ci_gate import FAILURE, PENDING, SUCCESS, Seen, ci_state, judge, pull_request_numbers, touches

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "conclusion", "state"),
    [
        ("completed", "success", SUCCESS),
        ("completed", "neutral", SUCCESS),
        ("completed", "skipped", SUCCESS),
        ("completed", "failure", FAILURE),
        ("completed", "cancelled", FAILURE),
        ("completed", "timed_out", FAILURE),
        ("completed", "action_required", FAILURE),
        ("queued", None, PENDING),
        ("in_progress", None, PENDING),
        ("success", None, SUCCESS),  # commit statuses
        ("failure", None, FAILURE),
        ("error", None, FAILURE),
        ("pending", None, PENDING),
    ],
)
def test_github_results_come_down_to_three_states(status: str, conclusion: str | None, state: str) -> None:
    assert ci_state(status, conclusion) == state


def test_every_required_name_green_is_green() -> None:
    seen = {"test": Seen(SUCCESS), "lint": Seen(SUCCESS), "other": Seen(FAILURE)}
    assert judge(["test", "lint"], seen, NOW, NOW + timedelta(hours=1)).outcome == "green"


def test_one_required_failure_is_red_with_its_link() -> None:
    seen = {"test": Seen(PENDING), "lint": Seen(FAILURE, "https://ci.example.org/lint")}
    verdict = judge(["test", "lint"], seen, NOW, None)
    assert (verdict.outcome, verdict.summary, verdict.failed) == (
        "red",
        "CI failed: lint (https://ci.example.org/lint)",
        "lint",
    )


def test_pending_until_the_deadline_then_timed_out() -> None:
    seen = {"test": Seen(SUCCESS), "lint": Seen(PENDING)}
    assert judge(["test", "lint", "e2e"], seen, NOW, NOW + timedelta(seconds=1)).summary == "waiting for CI: lint, e2e"
    verdict = judge(["test", "lint", "e2e"], seen, NOW, NOW)
    assert verdict.outcome == "timed_out"
    assert verdict.summary == "CI timed out: no result in time (still pending: lint; never reported: e2e)"


def test_nothing_required_is_green() -> None:
    assert judge([], {}, NOW, None).outcome == "green"


@pytest.mark.parametrize(
    ("message", "numbers"),
    [
        ("Merge pull request #12 from a-user/branch\n\nAdd it", [12]),
        ("Add the home page (#7)\n\n* one\n* two (#3)", [7]),
        ("Fix #5 in the parser", []),
        ("plain", []),
    ],
)
def test_pull_request_numbers_from_merge_commits(message: str, numbers: list[int]) -> None:
    assert pull_request_numbers(message) == numbers


def test_paths_match_across_folders() -> None:
    assert touches(["services/web/app/main.py"], ["services/web/**"])
    assert not touches(["services/api/main.py", "README.md"], ["services/web/**", "docs/*.md"])
    assert touches(["docs/a/b.md"], ["docs/*.md"])  # `*` crosses folders too, as in .gitignore-less globs
    assert touches(["anything"], [])
