"""Alert label matchers, in Alertmanager's own syntax, and which environments a firing alert stops.

A matcher is ``name OP value`` with ``OP`` one of ``=`` (equal), ``!=`` (not equal), ``=~`` (the regex
matches the whole value) and ``!~`` (it does not); the value is in double quotes (``\\"``, ``\\\\`` and
``\\n`` escapes) or bare. A label an alert does not have is the empty string, as in Alertmanager, so
``team!="ops"`` matches an alert without a ``team`` label and ``team=""`` matches only such alerts.

:func:`stopped_environments` answers which environments a firing alert stops, from the
``alertmanager.stop_on`` config: every matcher of an environment's rule must match (an AND).

Pure: no network, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Matcher", "MatcherError", "matches_all", "parse_matcher", "stopped_environments"]

Operator = Literal["=", "!=", "=~", "!~"]
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


class MatcherError(ValueError):
    """A matcher that cannot be parsed; the message says why."""


@dataclass(frozen=True)
class Matcher:
    name: str
    operator: Operator
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.operator == "=":
            return actual == self.value
        if self.operator == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.operator == "=~" else not found

    def text(self) -> str:
        """The matcher as Alertmanager reads it (``filter=`` of API v2), the value always quoted."""
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.operator}"{escaped}"'

    def __str__(self) -> str:
        return self.text()


def parse_matcher(text: str) -> Matcher:
    """``severity=~"critical|page"`` → a :class:`Matcher`; :class:`MatcherError` if it is not one."""
    found = _MATCHER.match(text)
    if found is None:
        raise MatcherError(f'{text!r} is not a matcher: write name="value", name!="value", name=~"re" or name!~"re"')
    name, operator, raw = found.group(1), found.group(2), found.group(3)
    value = _unquote(raw, text) if raw.startswith('"') else raw
    if not raw.startswith('"') and any(c in raw for c in '",{}'):
        raise MatcherError(f'{text!r}: quote a value that holds {{ }} , or " characters')
    pattern = None
    if operator in ("=~", "!~"):
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise MatcherError(f"{text!r}: invalid regular expression: {exc}") from None
    return Matcher(name, operator, value, pattern)  # type: ignore[arg-type]


def _unquote(raw: str, text: str) -> str:
    if len(raw) < 2 or not raw.endswith('"'):
        raise MatcherError(f"{text!r}: the value's closing quote is missing")
    out: list[str] = []
    body = iter(raw[1:-1])
    for char in body:
        if char == '"':
            raise MatcherError(f'{text!r}: write \\" for a quote inside the value')
        if char == "\\":
            escaped = next(body, "")
            if escaped not in _ESCAPES:
                raise MatcherError(f"{text!r}: unknown escape \\{escaped}")
            out.append(_ESCAPES[escaped])
        else:
            out.append(char)
    return "".join(out)


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def stopped_environments(
    labels: Mapping[str, str], stop_on: Mapping[str, Sequence[Matcher]]
) -> tuple[tuple[str, tuple[Matcher, ...]], ...]:
    """The environments a firing alert with ``labels`` stops, each with the rule that matched, in
    ``stop_on``'s order. An environment whose rule has no matchers stops on nothing (a rule that matched
    every alert would be a mistake, not a policy)."""
    return tuple(
        (environment, tuple(rule)) for environment, rule in stop_on.items() if rule and matches_all(rule, labels)
    )
