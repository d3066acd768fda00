"""A moment an operator types: an ISO 8601 time or a span from now, read the same way everywhere
(``freeze --until``, ``stop --until``, ``audit --since``).

- ISO 8601: ``2026-12-24T18:00+01:00``; without an offset it is UTC; a date alone is its midnight UTC.
- A span: a whole number and a unit, ``30m``, ``2h``, ``1d``, ``1w``; after ``now``, or before it when
  the moment is in the past (``--since 7d``).

Pure: ``now`` is a parameter.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

SPAN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
EXAMPLES = "ISO 8601 (2026-12-24T18:00Z, or a date) or a span (30m, 2h, 1d, 1w)"


def parse_moment(text: str, now: datetime, *, before: bool = False) -> datetime:
    """The moment ``text`` names, aware and in UTC; a span counts forward from ``now`` (backward with
    ``before``). ``ValueError`` naming what is wrong when it is neither, or beyond the calendar."""
    span = SPAN.match(text)
    try:
        if span:
            step = int(span.group(1)) * _UNIT[span.group(2)]
            return now - step if before else now + step
        at = datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not a time: give {EXAMPLES}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
