"""The judge, table by table: measurements written as letters (p=pass f=fail e=error i=inconclusive)."""

from __future__ import annotations

import pytest

from conveyor.domain.judge import judge
from conveyor.domain.model import CheckLimits, Measurement, Phase

LETTERS: dict[str, Phase] = {"p": "pass", "f": "fail", "e": "error", "i": "inconclusive"}


def taken(letters: str) -> list[Measurement]:
    return [Measurement(LETTERS[c], f"{LETTERS[c]} #{n}") for n, c in enumerate(letters, start=1)]


def limits(**kw: float) -> CheckLimits:
    return CheckLimits(**kw)  # type: ignore[arg-type]


# (id, measurements, limits, expected phase)
ROWS = [
    ("nothing yet", "", limits(count=3), "running"),
    ("one pass, one wanted", "p", limits(count=1), "successful"),
    ("two of three", "pp", limits(count=3), "running"),
    ("all passed", "ppp", limits(count=3), "successful"),
    ("first failure stops early", "f", limits(count=5), "failed"),
    ("failure after passes stops early", "ppf", limits(count=5), "failed"),
    ("failure within the limit keeps going", "pf", limits(count=5, failure_limit=1), "running"),
    ("failure within the limit then success", "pfp", limits(count=3, failure_limit=1), "successful"),
    ("failure limit exceeded by one", "pff", limits(count=5, failure_limit=1), "failed"),
    ("errors up to the limit keep going", "eeee", limits(count=10, consecutive_error_limit=4), "running"),
    ("one error too many", "eeeee", limits(count=10, consecutive_error_limit=4), "error"),
    ("a pass resets the error run", "eeeepeeee", limits(count=10, consecutive_error_limit=4), "running"),
    ("zero error limit: first error stops", "pe", limits(count=5, consecutive_error_limit=0), "error"),
    ("errors then pass at count", "eep", limits(count=3), "successful"),
    ("inconclusive stops at zero limit", "i", limits(count=3), "inconclusive"),
    ("inconclusive within the limit", "ip", limits(count=3, inconclusive_limit=1), "running"),
    ("inconclusive limit exceeded", "ipi", limits(count=5, inconclusive_limit=1), "inconclusive"),
    (
        "inconclusive not consecutive still counts",
        "ipipi",
        limits(count=9, inconclusive_limit=2),
        "inconclusive",
    ),
    ("count reached with only errors", "ee", limits(count=2), "error"),
    ("count reached with tolerated failures only", "ff", limits(count=2, failure_limit=2), "error"),
    ("count reached, inconclusives tolerated, no pass", "ii", limits(count=2, inconclusive_limit=2), "error"),
    ("failure beats errors", "eeeeef", limits(count=9, consecutive_error_limit=4), "failed"),
    ("failure beats inconclusive", "if", limits(count=9), "failed"),
    ("errors beat inconclusive", "iee", limits(count=9, consecutive_error_limit=1), "error"),
    ("more than count still judged", "pppf", limits(count=3), "failed"),
]


@pytest.mark.parametrize(("letters", "lim", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_judge_table(letters: str, lim: CheckLimits, expected: str) -> None:
    assert judge(taken(letters), lim).phase == expected


def test_counts_cover_every_phase() -> None:
    outcome = judge(taken("pfei"), limits(count=9, failure_limit=5, inconclusive_limit=5))
    assert outcome.counts == {"pass": 1, "fail": 1, "error": 1, "inconclusive": 1}
    assert judge([], limits()).counts == {"pass": 0, "fail": 0, "error": 0, "inconclusive": 0}


def test_failed_reason_names_counts_limit_and_latest_failure() -> None:
    ms = [
        Measurement.failed("HTTP 500 from http://a/"),
        Measurement.failed("HTTP 502 from http://a/"),
        Measurement.failed("HTTP 503 from http://a/"),
    ]
    outcome = judge(ms, limits(count=3, failure_limit=2))
    assert outcome.phase == "failed"
    assert outcome.reason == "3 of 3 measurements failed (limit 2): HTTP 503 from http://a/"
    assert not outcome.ok and outcome.done


def test_error_reason_names_the_latest_error() -> None:
    outcome = judge(taken("ee"), limits(count=5, consecutive_error_limit=1))
    assert outcome.reason == "2 consecutive measurements errored (limit 1): error #2"


def test_no_pass_reason_quotes_the_last_message() -> None:
    outcome = judge(taken("pe")[1:], limits(count=1, consecutive_error_limit=3))
    assert outcome.reason == "no measurement passed: error #2"


def test_successful_and_running_flags() -> None:
    assert judge(taken("p"), limits()).ok
    running = judge(taken("p"), limits(count=2))
    assert not running.done and not running.ok


def test_judge_is_pure_and_does_not_mutate_input() -> None:
    ms = taken("pfp")
    before = list(ms)
    first = judge(ms, limits(count=3, failure_limit=1))
    assert judge(ms, limits(count=3, failure_limit=1)) == first
    assert ms == before
