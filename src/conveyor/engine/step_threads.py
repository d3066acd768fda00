"""The threads that run steps: started on demand, reused, never a fixed number.

A thread that finished its step waits for the next one, and a new thread is started only when none is
idle. There is no upper bound of its own: the conductor bounds how many steps run at once, and a thread
whose step was abandoned (its plugin hangs) keeps it until the plugin returns, so it must not take the
place of a thread that the next step needs.

New threads are started with :func:`_thread.start_new_thread`, not ``threading.Thread.start``: the
latter waits until the new thread has run, which takes the interpreter lock twice and the CPU scheduler's
turn; with a thousand steps starting at once on a busy machine that was a millisecond or more each, a
second or more before the last step of a burst began, and every later wave inherited the spread. The
threads are daemons by nature (the process never waits for them) and name themselves for the log.
"""

from __future__ import annotations

import _thread
import itertools
import queue
import threading
from collections.abc import Callable


class StepThreads:
    def __init__(self, name: str = "step") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job, counting those a job was just handed to as busy
        self._started = 0
        self._waiting = 0  # jobs submitted that no thread has taken yet
        self._all_taken = threading.Condition(self._lock)
        self._numbers = itertools.count(1)

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on an idle thread, or on a new one when none is idle. ``job`` must not raise."""
        with self._lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1
            else:
                self._started += 1
            self._waiting += 1
        self._jobs.put(job)
        if not reuse:
            _thread.start_new_thread(self._work, (f"{self._name}-{next(self._numbers)}",))

    @property
    def started(self) -> int:
        """Threads started so far (they are daemons: each lives as long as the process)."""
        with self._lock:
            return self._started

    @property
    def idle(self) -> int:
        """Threads waiting for a job."""
        with self._lock:
            return self._idle

    def wait_taken(self, timeout: float) -> bool:
        """Wait until every job submitted so far has been taken by a thread, at most ``timeout`` seconds;
        True if they all were."""
        with self._all_taken:
            return self._all_taken.wait_for(lambda: self._waiting == 0, timeout)

    def _work(self, name: str) -> None:
        threading.current_thread().name = name  # for the log: a thread started this way has no name of its own
        while True:
            job = self._jobs.get()
            with self._lock:
                self._waiting -= 1
                if self._waiting == 0:
                    self._all_taken.notify_all()
            job()
            with self._lock:
                self._idle += 1
