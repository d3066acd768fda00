"""A notifier's ``retry`` block: every bad value is reported at its FILE:LINE:COL, like any config problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.config_fakes import problems, use_fake_plugins


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    use_fake_plugins(monkeypatch)


APP = """\
teams: {publishing: {notify: [audit]}}
defaults: {deploy: {driver: fake}}
apps:
  web: {repo: ./web, team: publishing}
notifiers:
  audit:
    type: log
"""
HINT = "(use e.g. 500ms, 1s, 10m, 1h or a number of seconds)"

CASES: list[tuple[str, str, list[str]]] = [
    (
        "max_delay shorter than first_delay",
        "    retry: {first_delay: 2s, max_delay: 1s}\n",
        ["conveyor.yaml:8:41: 'max_delay' in 'retry' of notifier 'audit': must be at least first_delay (2s), got 1s"],
    ),
    (
        "first_delay above the default max_delay",
        "    retry:\n      first_delay: 10m\n",
        [
            "conveyor.yaml:8:5: 'max_delay' in 'retry' of notifier 'audit':"
            " must be at least first_delay (600s), got 300s"
        ],
    ),
    (
        "no attempt at all",
        "    retry:\n      max_attempts: 0\n",
        [
            "conveyor.yaml:9:21: 'max_attempts' in 'retry' of notifier 'audit':"
            " input should be greater than or equal to 1"
        ],
    ),
    (
        "a zero first_delay",
        "    retry: {first_delay: 0}\n",
        ["conveyor.yaml:8:26: 'first_delay' in 'retry' of notifier 'audit': input should be greater than 0"],
    ),
    (
        "a zero max_age",
        "    retry: {max_age: 0s}\n",
        ["conveyor.yaml:8:22: 'max_age' in 'retry' of notifier 'audit': input should be greater than 0"],
    ),
    (
        "unknown key with did-you-mean",
        "    retry:\n      max_atempts: 5\n",
        ["conveyor.yaml:9:7: unknown key 'max_atempts' in 'retry' of notifier 'audit' (did you mean 'max_attempts'?)"],
    ),
    (
        "not a duration",
        "    retry:\n      max_age: two days\n",
        [f"conveyor.yaml:9:16: 'max_age' in 'retry' of notifier 'audit': invalid duration 'two days' {HINT}"],
    ),
    (
        "not a mapping",
        "    retry: 5\n",
        ["conveyor.yaml:8:12: 'retry' in notifier 'audit': expected a mapping"],
    ),
]


@pytest.mark.parametrize(("retry", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_retry_problem_is_reported_at_its_position(retry: str, expected: list[str]) -> None:
    assert problems(APP + retry) == expected
