"""Problems found in a config file, each located at FILE:LINE:COL, and the one error that carries them all.

The loader never stops at the first problem: it records every one in a :class:`ProblemLog` and raises a
single :class:`ConfigError` at the end, so a user fixes a file in one round trip. Lines and columns are
1-based, as editors show them. A message never carries the value of a ``${VAR}`` secret: the log redacts
every secret before the error is raised.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

REDACTED = "********"


class Position(NamedTuple):
    line: int  # 1-based
    col: int  # 1-based


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class ConfigError(Exception):
    """The config file cannot be used; ``problems`` lists every reason, sorted by position."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ProblemLog:
    """Collects problems for one file; identical problems (same place, same text) are kept once."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._problems: dict[Problem, None] = {}

    def add(self, position: Position, message: str) -> None:
        self._problems.setdefault(Problem(self.file, position.line, position.col, message), None)

    def __len__(self) -> int:
        return len(self._problems)

    def raise_if_any(self, secrets: Iterable[str] = ()) -> None:
        if not self._problems:
            return
        hidden = sorted((s for s in secrets if s), key=len, reverse=True)
        in_file_order = sorted(self._problems, key=lambda p: (p.line, p.col))
        raise ConfigError([replace(p, message=_redact(p.message, hidden)) for p in in_file_order])


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a candidate is close to ``word``, else the empty string."""
    options = list(candidates)
    close = difflib.get_close_matches(word, options, n=1) or [c for c in options if word and c.startswith(word)]
    return f" (did you mean {close[0]!r}?)" if close else ""
