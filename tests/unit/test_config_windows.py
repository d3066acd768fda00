"""The ``windows`` section: what it resolves to, and every mistake at its FILE:LINE:COL."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from conveyor.domain.holds import Window
from tests.unit.config_fakes import load, problems, use_fake_plugins


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    use_fake_plugins(monkeypatch)


BASE = """\
teams: {publishing: {}}
defaults: {deploy: {driver: fake}}
apps:
  web: {repo: ./web, team: publishing}
windows:
"""


def test_a_window_resolves_to_plain_data() -> None:
    config = load(
        BASE
        + """\
  production:
    timezone: Europe/London
    hours:
      mon-thu: "09:30-17:00"
      fri: ["09:30-12:00", "13:00-15:00"]
      sat,sun: 10:00-11:00, 12:00-24:00
    holidays: GB-ENG
    closed: [2026-12-24, "2026-12-31"]
"""
    )
    window = config.windows["production"]
    assert window == Window(
        "production",
        "Europe/London",
        (
            *((day, time(9, 30), time(17, 0)) for day in range(4)),
            (4, time(9, 30), time(12, 0)),
            (4, time(13, 0), time(15, 0)),
            (5, time(10, 0), time(11, 0)),
            (5, time(12, 0), time.max),
            (6, time(10, 0), time(11, 0)),
            (6, time(12, 0), time.max),
        ),
        "GB-ENG",
        frozenset({date(2026, 12, 24), date(2026, 12, 31)}),
    )
    assert set(config.windows) == {"production"}


def test_no_windows_is_always_open() -> None:
    assert load(BASE.removesuffix("windows:\n")).windows == {}


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "  production:\n    timezone: Europe/Londn\n    hours: {mon: 09:00-17:00}\n",
            ["conveyor.yaml:7:15: unknown time zone 'Europe/Londn' (use an IANA name such as Europe/London or UTC)"],
        ),
        (
            "  production:\n    hours: {mon: 09:00-17:00}\n",
            ["conveyor.yaml:6:3: a window needs a timezone (an IANA name such as Europe/London)"],
        ),
        (
            "  production:\n    timezone: UTC\n    hours: {mon: 17:00-09:00}\n",
            [
                "conveyor.yaml:8:18: invalid hours '17:00-09:00': use \"HH:MM-HH:MM\", opening before closing "
                "(24:00 ends a day)"
            ],
        ),
        (
            "  production:\n    timezone: UTC\n    hours: {mon: 25:00-26:00}\n",
            [
                "conveyor.yaml:8:18: invalid hours '25:00-26:00': use \"HH:MM-HH:MM\", opening before closing "
                "(24:00 ends a day)"
            ],
        ),
        (
            "  production:\n    timezone: UTC\n    hours: {monday-fri: 09:00-17:00}\n",
            ["conveyor.yaml:8:13: invalid days 'monday-fri': use mon, tue, ... sun or a range such as mon-fri"],
        ),
        (
            "  production:\n    timezone: UTC\n    hours: {}\n",
            ['conveyor.yaml:8:12: a window needs hours: weekdays to times, e.g. mon-fri: "09:30-17:00"'],
        ),
        (
            "  production:\n    timezone: UTC\n    hours: {mon: 09:00-17:00}\n    holidays: XX-YY\n",
            [
                "conveyor.yaml:9:15: unknown holiday calendar 'XX-YY' (a country code of the holidays package, "
                "optionally with a subdivision: GB-ENG, US-CA, DE-BY, FR)"
            ],
        ),
        (
            "  production:\n    timezone: UTC\n    hours: {mon: 09:00-17:00}\n    closed: [2026-13-01]\n",
            ["conveyor.yaml:9:14: invalid value '2026-13-01': month must be in 1..12"],
        ),
        (
            '  production:\n    timezone: UTC\n    hours: {mon: 09:00-17:00}\n    closed: ["2026-02-30"]\n',
            ["conveyor.yaml:9:14: invalid date '2026-02-30' (use YYYY-MM-DD)"],
        ),
        (
            "  prod:\n    timezone: UTC\n    hours: {mon: 09:00-17:00}\n",
            [
                "conveyor.yaml:6:3: unknown environment 'prod' (did you mean 'production'?) "
                "(known: integration, staging, production)"
            ],
        ),
        (
            "  production:\n    timezone: UTC\n    hours: {mon: 09:00-17:00}\n    holiday: GB\n",
            [
                "conveyor.yaml:9:5: unknown key 'holiday' in the window of production (did you mean 'holidays'?) "
                "(known: timezone, hours, holidays, closed)"
            ],
        ),
    ],
)
def test_each_mistake_is_reported_at_its_position(section: str, expected: list[str]) -> None:
    assert problems(BASE + section) == expected
