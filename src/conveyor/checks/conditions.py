"""Conditions over a query's result, such as ``result[0] < 0.01``, evaluated safely.

A condition is one Python-like expression evaluated by `simpleeval <https://pypi.org/project/simpleeval/>`_,
never by ``eval``: no attribute access to dunders, no imports, no assignment, bounded powers and string
sizes. It sees two names:

- ``result``: the values as a list of floats (``result[0]``, ``max(result)``, ``len(result)``);
- ``labels``: the labels of each value, a list of dicts in the same order (``labels[0]["pod"]``);

and the functions ``len min max sum abs all any round float int isnan``. Comprehensions work:
``all(v < 0.01 for v in result)``.

:func:`compile_condition` is called by the options model, so a condition naming an unknown variable or
function, or using syntax that is not allowed, is reported by ``conveyor check`` at its line.
:meth:`Condition.holds` answers True or False, or raises :class:`ConditionError` (an index out of range,
a result that is not a boolean), which the check turns into an ``error`` measurement.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simpleeval import (
    AttributeDoesNotExist,
    EvalWithCompoundTypes,
    FeatureNotAvailable,
    FunctionNotDefined,
    InvalidExpression,
    NameNotDefined,
)

__all__ = ["Condition", "ConditionError", "compile_condition"]

FUNCTIONS: dict[str, Any] = {
    "len": len,
    "min": min,
    "max": max,
    "sum": sum,
    "abs": abs,
    "all": all,
    "any": any,
    "round": round,
    "float": float,
    "int": int,
    "isnan": math.isnan,
}
_SAMPLE: dict[str, Any] = {"result": [0.0], "labels": [{"": ""}]}  # a dry run at config load
_NOT_ALLOWED = (NameNotDefined, FunctionNotDefined, FeatureNotAvailable, AttributeDoesNotExist)


class ConditionError(ValueError):
    """A condition that cannot be evaluated (at config load: written wrong; at run time: on this result)."""


@dataclass(frozen=True)
class Condition:
    text: str
    parsed: Any = field(compare=False, repr=False)

    def holds(self, result: Sequence[float], labels: Sequence[Mapping[str, str]]) -> bool:
        value = _evaluate(self, {"result": list(result), "labels": [dict(x) for x in labels]})
        if not isinstance(value, bool):
            raise ConditionError(f"`{self.text}` gave {value!r}, not true or false")
        return value

    def __str__(self) -> str:
        return self.text


def compile_condition(text: str) -> Condition:
    """Parse ``text`` and dry-run it on a one-value result; :class:`ConditionError` if it is not allowed."""
    if not text.strip():
        raise ConditionError("a condition must not be empty")
    try:
        ast.parse(text.strip(), mode="eval")  # one expression: no statement, no second expression
    except SyntaxError as exc:
        raise ConditionError(f"`{text}` is not one expression: {exc.msg}") from None
    parsed = _evaluator({}).parse(text.strip())
    condition = Condition(text.strip(), parsed)
    try:
        _evaluate(condition, _SAMPLE)
    except ConditionError as exc:
        if isinstance(exc.__cause__, _NOT_ALLOWED):
            raise
    return condition


def _evaluator(names: Mapping[str, Any]) -> EvalWithCompoundTypes:
    return EvalWithCompoundTypes(names=dict(names), functions=dict(FUNCTIONS))


def _evaluate(condition: Condition, names: Mapping[str, Any]) -> Any:
    try:
        return _evaluator(names).eval(condition.text, previously_parsed=condition.parsed)
    except NameNotDefined as exc:
        raise ConditionError(f"`{condition.text}`: unknown name {exc.name!r} (known: result, labels)") from exc
    except FunctionNotDefined as exc:
        known = ", ".join(FUNCTIONS)
        raise ConditionError(f"`{condition.text}`: unknown function {exc.func_name!r} (known: {known})") from exc
    except (FeatureNotAvailable, AttributeDoesNotExist, InvalidExpression) as exc:
        raise ConditionError(f"`{condition.text}`: {exc}") from exc
    except (IndexError, KeyError) as exc:
        count = len(names.get("result", ()))
        raise ConditionError(f"`{condition.text}`: {exc} (the result has {count} value(s))") from exc
    except Exception as exc:  # TypeError, ZeroDivisionError, ...: this result, not the condition, is at fault
        raise ConditionError(f"`{condition.text}`: {type(exc).__name__}: {exc}") from exc
