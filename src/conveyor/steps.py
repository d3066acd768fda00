"""What every step gets from the runner while it runs: a log to write to and a cancellation flag.

Drivers and checks are written against :class:`StepContext` only, so they run the same under the real
runner, in the contract suites and in benchmarks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class StepContext:
    """The runner's side of a running step.

    ``log`` appends one line to the step's log (the runner stores it; secrets are redacted before
    storing). ``cancelled`` is set when the step must stop: a SIGTERM past the grace period, a lost
    lease, or an operator's cancel. Long waits should use ``ctx.wait(seconds)`` so they wake on cancel.
    """

    log: Callable[[str], None] = field(default=lambda line: None)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the step was cancelled meanwhile."""
        return self.cancelled.wait(max(0.0, seconds))

    def log_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.log(line)


class ListLog:
    """A thread-safe in-memory log sink, for tests and fakes."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    @property
    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)
