"""Conditions over a query's result: evaluated safely, mistakes found at config load."""

from __future__ import annotations

import math

import pytest

from conveyor.checks.conditions import ConditionError, compile_condition
from conveyor.checks.prometheus import PrometheusOptions, QueryResult, judge_result


@pytest.mark.parametrize(
    ("text", "result", "labels", "holds"),
    [
        ("result[0] < 0.01", [0.001], [{}], True),
        ("result[0] < 0.01", [0.2], [{}], False),
        ("all(v < 0.01 for v in result)", [0.001, 0.002], [{}, {}], True),
        ("any(v > 1 for v in result)", [0.5, 2.0], [{}, {}], True),
        ("max(result) <= 3 and min(result) >= 1", [1.0, 3.0], [{}, {}], True),
        ("len(result) == 2", [1.0, 2.0], [{}, {}], True),
        ("sum(result) / len(result) > 1.5", [1.0, 3.0], [{}, {}], True),
        ('labels[0]["pod"] == "web-1"', [1.0], [{"pod": "web-1"}], True),
        ("isnan(result[0])", [math.nan], [{}], True),
        ("result[0] < 0.01", [math.nan], [{}], False),  # NaN compares false, as in PromQL
        ("result == [4]", [4.0], [{}], True),
        ("abs(result[0] - 1) < 0.1 or False", [1.05], [{}], True),
    ],
)
def test_evaluation(text: str, result: list[float], labels: list[dict[str, str]], holds: bool) -> None:
    assert compile_condition(text).holds(result, labels) is holds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "must not be empty"),
        ("resul[0] < 1", "unknown name 'resul'"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("__import__('os').system('x')", "unknown function '__import__'"),
        ("result.__class__", "__class__"),
        ("x = 1", "is not one expression"),
        ("result[0] < 1; result[0] > 0", "is not one expression"),
        ("result[0] <", "is not one expression"),
        ("lambda: 1", "not available"),
    ],
)
def test_what_config_load_refuses(text: str, says: str) -> None:
    with pytest.raises(ConditionError) as raised:
        compile_condition(text)
    assert says in str(raised.value)


def test_run_time_errors_say_what_went_wrong() -> None:
    with pytest.raises(ConditionError, match=r"index out of range \(the result has 1 value\(s\)\)"):
        compile_condition("result[1] > 0").holds([1.0], [{}])
    with pytest.raises(ConditionError, match=r"gave 1\.0, not true or false"):
        compile_condition("result[0]").holds([1.0], [{}])
    with pytest.raises(ConditionError, match="ZeroDivisionError"):
        compile_condition("result[0] / 0 > 1").holds([1.0], [{}])


def options(**given: str) -> PrometheusOptions:
    return PrometheusOptions.model_validate({"address": "http://p", "query": "q", **given})


@pytest.mark.parametrize(
    ("given", "values", "phase"),
    [
        ({"success": "result[0] < 1"}, [0.5], "pass"),
        ({"success": "result[0] < 1"}, [2.0], "fail"),
        ({"failure": "result[0] > 1"}, [2.0], "fail"),
        ({"failure": "result[0] > 1"}, [0.5], "pass"),
        ({"success": "result[0] < 1", "failure": "result[0] > 5"}, [0.5], "pass"),
        ({"success": "result[0] < 1", "failure": "result[0] > 5"}, [9.0], "fail"),
        ({"success": "result[0] < 1", "failure": "result[0] > 5"}, [3.0], "inconclusive"),
        ({"success": "True", "failure": "True"}, [3.0], "fail"),  # failure wins
        ({"success": "result[0] < 1"}, [], "inconclusive"),
        ({"success": "result[0] < 1", "empty": "pass"}, [], "pass"),
        ({"success": "result[0] < 1", "empty": "fail"}, [], "fail"),
        ({"success": "result[2] < 1"}, [0.5], "error"),
    ],
)
def test_judging_a_result(given: dict[str, str], values: list[float], phase: str) -> None:
    result = QueryResult(values=values, labels=[{} for _ in values])
    measurement = judge_result("q", result, options(**given))
    assert measurement.phase == phase, measurement.message
    assert "'q'" in measurement.message  # the query as sent is always in the evidence
