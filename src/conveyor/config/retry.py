"""When a failed delivery is tried again, and when conveyor stops trying.

The delay doubles from ``first_delay`` up to ``max_delay``, each shortened at random by up to ``jitter``
(so receivers coming back are not hit by every sender at the same instant). A notification is given up
(state ``failed``, kept and listed) after ``max_attempts`` attempts or once its event is older than
``max_age`` seconds, whichever comes first. With the defaults: 1 s, 2 s, 4 s … 5 min, then every 5 min;
about two hours of attempts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = 1.0
    max_delay: float = 300.0
    jitter: float = 0.2
    max_attempts: int = 30
    max_age: float = 24 * 3600.0

    def delay(self, attempts: int, rand: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1-based); ``rand`` in [0, 1) for tests."""
        base = min(self.max_delay, self.first_delay * 2.0 ** min(max(attempts, 1) - 1, 62))
        return base * (1.0 - self.jitter * (random.random() if rand is None else rand))

    def gives_up(self, attempts: int, age: float) -> bool:
        return attempts >= self.max_attempts or age >= self.max_age
