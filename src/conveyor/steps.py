"""What every step gets from the runner while it runs: a log to write to and a cancellation flag.

Drivers and checks are written against :class:`StepContext` only, so they run the same under the real
runner, in the contract suites and in benchmarks. A step runs on a thread of its own (``deploy``) or, for
a driver written as a coroutine (``deploy_async``), on the runner's one event loop; ``ctx.wait`` and
``ctx.sleep`` are their waits that end early when the step is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


class Cancellation(threading.Event):
    """A ``threading.Event`` that also wakes the coroutines sleeping in :meth:`StepContext.sleep`, on
    whatever thread it is set from."""

    def __init__(self) -> None:
        super().__init__()
        self._guard = threading.Lock()
        self._wakers: set[Callable[[], None]] = set()

    def set(self) -> None:
        with self._guard:
            super().set()
            wakers, self._wakers = self._wakers, set()
        for wake in wakers:
            wake()

    def add_waker(self, wake: Callable[[], None]) -> bool:
        """Call ``wake`` once when the flag is set; False (and no call) when it is set already."""
        with self._guard:
            if self.is_set():
                return False
            self._wakers.add(wake)
            return True

    def discard_waker(self, wake: Callable[[], None]) -> None:
        with self._guard:
            self._wakers.discard(wake)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class StepContext:
    """The runner's side of a running step.

    ``log`` appends one line to the step's log (the runner stores it; secrets are redacted before
    storing); it may be called from any thread. ``cancelled`` is set when the step must stop: a SIGTERM
    past the grace period, a lost lease, a step timeout or an operator's cancel. Long waits should use
    ``ctx.wait(seconds)`` (on a thread) or ``await ctx.sleep(seconds)`` (in a coroutine) so they wake on
    cancel.
    """

    log: Callable[[str], None] = field(default=lambda line: None)
    cancelled: Cancellation = field(default_factory=Cancellation)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the step was cancelled meanwhile."""
        return self.cancelled.wait(max(0.0, seconds))

    async def sleep(self, seconds: float) -> bool:
        """:meth:`wait` for a coroutine: sleep up to ``seconds`` without holding a thread; True if the
        step was cancelled meanwhile."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # its loop has closed: this sleep is over anyway
                loop.call_soon_threadsafe(_resolve, woken)

        if not self.cancelled.add_waker(wake):
            return True
        timer = loop.call_later(max(0.0, seconds), _resolve, woken)
        try:
            await woken
        finally:
            timer.cancel()
            self.cancelled.discard_waker(wake)
        return self.cancelled.is_set()

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
