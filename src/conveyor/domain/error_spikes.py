"""When an issue's errors spike: a pure rule over its per-minute counts (``errors.spike`` in the config).

A minute is a spike when it has at least ``min_events`` events of the issue *and* at least ``factor``
times the issue's average minute over the ``baseline`` before it (minutes without events count as 0).
An issue first seen inside the baseline has a small average, so its first busy minute is a spike, which is
what a team wants to hear about. An issue that spiked is not announced again before ``cooldown`` has
passed, however many minutes qualify: one message per burst, not one per minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SpikeRule:
    """A minute with at least ``min_events`` events of an issue and at least ``factor`` times its average
    minute over the previous ``baseline`` seconds is a spike; one ``error.spike`` per issue per ``cooldown``."""

    min_events: int = 10
    factor: float = 5.0
    baseline: float = 3600.0
    cooldown: float = 3600.0


def baseline_minutes(rule: SpikeRule) -> int:
    return max(1, int(rule.baseline // 60))


def is_spike(
    rule: SpikeRule, *, minute_events: int, baseline_events: int, last_spike_at: datetime | None, now: datetime
) -> bool:
    """Whether ``minute_events`` in the current minute, after ``baseline_events`` in the baseline before
    it, is a spike to announce now."""
    if minute_events < rule.min_events:
        return False
    if last_spike_at is not None and now - last_spike_at < timedelta(seconds=rule.cooldown):
        return False
    average = baseline_events / baseline_minutes(rule)
    return minute_events >= rule.factor * average
