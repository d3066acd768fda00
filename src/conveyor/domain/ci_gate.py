"""The CI gate: whether a pushed commit may become a release, from what GitHub reported about it.

Pure functions. GitHub reports CI four ways (check runs, check suites, commit statuses, workflow runs),
each with its own words; :func:`ci_state` brings them to three: ``pending``, ``success``, ``failure``. A
candidate names what it needs in ``ci.required`` (a check run's name, a status context, a workflow's
name, or the app that owns a check suite); :func:`judge` answers:

- ``red`` as soon as one required name failed (the first one failing, in the order required);
- ``green`` when every required name succeeded;
- ``timed_out`` when neither, and the deadline has passed;
- ``pending`` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

PENDING, SUCCESS, FAILURE = "pending", "success", "failure"

# conclusions of check runs, suites and workflow runs; states of commit statuses
_SUCCESS = {"success", "neutral", "skipped"}
_FAILURE = {"failure", "cancelled", "timed_out", "action_required", "startup_failure", "stale", "error"}


def ci_state(status: str | None, conclusion: str | None) -> str:
    """A check run, suite or workflow run (``status`` + ``conclusion``), or a commit status (its ``state``
    as ``status``, no conclusion), as pending, success or failure."""
    if conclusion is None and status in ("success", "failure", "error", "pending"):
        conclusion = None if status == "pending" else status  # a commit status
    if conclusion in _SUCCESS:
        return SUCCESS
    if conclusion in _FAILURE:
        return FAILURE
    return PENDING


@dataclass(frozen=True)
class Seen:
    """The newest result for one name: its state and where to read more."""

    state: str
    url: str | None = None
    source: str = ""


@dataclass(frozen=True)
class Verdict:
    outcome: str  # pending | green | red | timed_out
    summary: str
    failed: str | None = None  # the first required name that failed
    missing: tuple[str, ...] = ()  # required names not green yet (pending or never reported)


def judge(required: Iterable[str], seen: Mapping[str, Seen], now: datetime, deadline: datetime | None) -> Verdict:
    names = list(required)
    for name in names:
        result = seen.get(name)
        if result is not None and result.state == FAILURE:
            where = f" ({result.url})" if result.url else ""
            return Verdict("red", f"CI failed: {name}{where}", failed=name)
    missing = tuple(n for n in names if (r := seen.get(n)) is None or r.state != SUCCESS)
    if not missing:
        return Verdict("green", f"CI passed: {', '.join(names)}" if names else "no CI required")
    if deadline is not None and now >= deadline:
        pending = [n for n in missing if n in seen]
        never = [n for n in missing if n not in seen]
        parts = [f"still pending: {', '.join(pending)}"] if pending else []
        parts += [f"never reported: {', '.join(never)}"] if never else []
        detail = "; ".join(parts)
        return Verdict("timed_out", f"CI timed out: no result in time ({detail})", missing=missing)
    return Verdict("pending", f"waiting for CI: {', '.join(missing)}", missing=missing)


_PR_NUMBERS = re.compile(r"(?:\(#(\d+)\)\s*$|^Merge pull request #(\d+) )", re.MULTILINE)


def pull_request_numbers(message: str) -> list[int]:
    """PR numbers GitHub writes into merge commits: "Merge pull request #12 from ..." and squash merges'
    "Subject (#12)" (on the first line)."""
    first = message.split("\n", 1)[0]
    numbers = [int(a or b) for a, b in _PR_NUMBERS.findall(first)]
    return list(dict.fromkeys(numbers))


def touches(paths: Iterable[str], globs: Iterable[str]) -> bool:
    """Whether any file of ``paths`` matches a glob (``*`` and ``**`` both cross folders); no globs: True."""
    patterns = list(globs)
    if not patterns:
        return True
    return any(fnmatchcase(path, pattern) for path in paths for pattern in patterns)
