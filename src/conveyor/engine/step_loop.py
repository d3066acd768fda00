"""The event loop that runs the steps written as coroutines (a driver's ``deploy_async``).

A step on a thread of its own costs that thread's wake-ups: a thousand deploys ending together were a
thousand threads asking for the interpreter lock at once, which on a small machine took longer than
recording their results. Steps that only wait on I/O are tasks on one loop instead, on a thread of its
own, started with the first such step.

A coroutine must never block; one that does stalls every task on the loop. The conductor's deadlines
still fail such steps (their results come from the conductor, not the loop), and a loop that has not
answered for ``STALL_SECONDS`` is given up like a hung plugin's thread: it is logged, left to end on its
own, and the next steps get a new loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

log = logging.getLogger(__name__)

STALL_SECONDS = 10.0  # a loop whose ticks stopped this long ago is given up
TICK_SECONDS = 0.5


class TaskHandle:
    """One submitted coroutine; :meth:`cancel` cancels it from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.task: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop was closed: nothing runs there any more
            self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


class StepLoop:
    def __init__(self, name: str = "step-loop", stall_seconds: float | None = None) -> None:
        self._name = name
        self._stall_seconds = stall_seconds
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ticked = 0.0  # time.monotonic() of the current loop's last tick
        self._tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        self.given_up = 0  # loops abandoned for not answering

    def submit_all(self, jobs: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> list[TaskHandle]:
        """Run each job's coroutine as a task on the loop (one wake-up of the loop for all of them). The
        coroutines must not raise; they are not awaited by anyone."""
        loop = self._current()
        handles = [TaskHandle(loop) for _ in jobs]
        loop.call_soon_threadsafe(self._create, loop, list(jobs), handles)
        return handles

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop once the tasks on it have ended or ``timeout`` passed (their steps were settled
        or abandoned by then); a loop that does not stop is left to its daemon thread."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            return
        thread.join(timeout)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def _current(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            stall = STALL_SECONDS if self._stall_seconds is None else self._stall_seconds
            if self._loop is not None and time.monotonic() - self._ticked > stall:
                self.given_up += 1
                log.error(
                    "the step event loop has not answered for %.0fs: a coroutine step blocks it; leaving it "
                    "and its tasks behind and starting a new loop (%d given up so far)",
                    time.monotonic() - self._ticked,
                    self.given_up,
                )
                self._loop = self._thread = None
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._ticked = time.monotonic()
                thread = threading.Thread(target=self._run, args=(loop,), name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(self._tick, loop)
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))  # let the cancelled tasks run their finally blocks
            loop.close()

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._loop is loop:
                self._ticked = time.monotonic()
        loop.call_later(TICK_SECONDS, self._tick, loop)

    def _create(
        self,
        loop: asyncio.AbstractEventLoop,
        jobs: list[Callable[[], Coroutine[Any, Any, None]]],
        handles: list[TaskHandle],
    ) -> None:
        for job, handle in zip(jobs, handles, strict=True):
            task = loop.create_task(job())
            handle.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
