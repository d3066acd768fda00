"""A per-key rate limit for the intake: at most ``envelopes`` requests in each window of ``per`` seconds.

A fixed window per key, counted in this process (each ``serve`` behind a load balancer counts its own).
A refused request is told how long to wait in the form Sentry SDKs honour: ``Retry-After: N`` and
``X-Sentry-Rate-Limits: N::key`` (every category, for this key), after which the SDK sends nothing to
this DSN for N seconds, dropping (and counting in its client reports) what it would have sent.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from conveyor.config.resolved import ErrorRateLimit


class RateLimits:
    def __init__(self, limit: ErrorRateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.clock = limit, clock
        self._windows: dict[int, tuple[float, int]] = {}  # project id -> (window start, requests in it)
        self._mutex = threading.Lock()

    def retry_after(self, project_id: int) -> int | None:
        """Count one request for ``project_id``: None when it may pass, else the seconds until it may."""
        now = self.clock()
        with self._mutex:
            start, used = self._windows.get(project_id, (now, 0))
            if now - start >= self.limit.per:
                start, used = now, 0
            if used >= self.limit.envelopes:
                return max(1, math.ceil(start + self.limit.per - now))
            self._windows[project_id] = (start, used + 1)
            return None


def rate_limit_headers(seconds: int) -> dict[str, str]:
    return {"Retry-After": str(seconds), "X-Sentry-Rate-Limits": f"{seconds}::key"}
