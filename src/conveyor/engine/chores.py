"""Chores: the conductor's periodic work beside the steps (webhook intake, polling, reconciliation, pruning).

A :class:`Chore` is a name, how often it runs and a callable. The conductor runs its chores on one thread
of their own (:class:`Chores`), so a slow one (a ``git ls-remote`` with its timeout, a GitHub API call
waiting out a rate limit) never delays planning or a step. Invariants:

- a chore that raises is logged with its traceback and counted (``Chores.failures``); it runs again at
  its next turn and the conductor goes on;
- a chore returns True when it changed something the planner should see at once (a release was made);
  the conductor is then woken instead of waiting for its next poll;
- every process runs every chore: what a chore takes from a shared queue it claims under a lease
  (:mod:`conveyor.store.leased_queue`), so several workers share the work and a crash loses nothing.

Which chores a conductor runs is decided in one place, :func:`chores_for`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.engine.hold_expiry import expiry_chore
from conveyor.error_intake.retention import ERROR_PRUNE_INTERVAL, ErrorRetention
from conveyor.sources.poll import CHORE_EVERY, Poller
from conveyor.store.database import Database

log = logging.getLogger(__name__)

HOLD_EXPIRY_SECONDS = 5.0


@dataclass
class Chore:
    name: str
    every: float  # seconds between the end of one run and the start of the next
    run: Callable[[], bool]  # True: it changed what the planner sees, wake the conductor
    first_after: float = 0.0  # seconds after start before its first run
    next_at: float = 0.0  # monotonic time of the next run, set by Chores
    close: Callable[[float], None] | None = None  # on stop: finish work it started, within the seconds given
    soon: bool = False  # asked for by run_soon: runs again at once, even if asked while it was running
    min_gap: float = 0.0  # seconds between the starts of two runs asked for by run_soon (batches a burst)
    last_run: float = float("-inf")  # monotonic time its last run started


class Chores:
    """Runs chores on one daemon thread until stopped."""

    def __init__(
        self, chores: list[Chore], wake: Callable[[], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.chores, self.wake, self.clock = chores, wake, clock
        self.failures: Counter[str] = Counter()
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.chores:
            return
        now = self.clock()
        for chore in self.chores:
            chore.next_at = now + chore.first_after
        self._thread = threading.Thread(target=self._loop, name="chores", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        deadline = self.clock() + timeout
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for chore in self.chores:
            if chore.close is not None:
                try:
                    chore.close(max(0.0, deadline - self.clock()))
                except Exception:
                    log.exception("closing chore %s failed", chore.name)

    def poke(self) -> None:
        """Run every chore now (tests, and a process that knows new work arrived)."""
        for chore in self.chores:
            chore.next_at = 0.0
        self._poke.set()

    def run_soon(self, name: str) -> None:
        """Run chore ``name`` at once (new work for it arrived, e.g. a webhook delivery)."""
        for chore in self.chores:
            if chore.name == name:
                chore.soon, chore.next_at = True, min(chore.next_at, chore.last_run + chore.min_gap)
                self._poke.set()

    def run_due(self) -> bool:
        """Run the chores whose turn it is; True if any asked for a re-plan."""
        changed = False
        for chore in self.chores:
            if self._stop.is_set():
                break
            if self.clock() < chore.next_at:
                continue
            chore.soon, chore.last_run = False, self.clock()
            changed |= self.run_one(chore)
            chore.next_at = chore.last_run + chore.min_gap if chore.soon else self.clock() + chore.every
        return changed

    def run_one(self, chore: Chore) -> bool:
        try:
            return bool(chore.run())
        except Exception:
            self.failures[chore.name] += 1
            log.exception("chore %s failed; it runs again in %.1fs", chore.name, chore.every)
            return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.run_due():
                self.wake()
            wait = min((c.next_at for c in self.chores), default=1.0) - self.clock()
            self._poke.wait(max(0.0, min(wait, 1.0)))
            self._poke.clear()


def chores_for(config: Config, db: Database) -> list[Chore]:
    """Every chore a conductor runs for ``config``: one line per source of periodic work."""
    chores = [Chore("lift expired holds", every=HOLD_EXPIRY_SECONDS, run=expiry_chore(db, utc_now))]
    if any(app.poll is not None for app in config.apps.values()):
        poller = Poller(config, db)
        chores.append(Chore("poll", every=CHORE_EVERY, run=poller.run, close=poller.close))
    from conveyor.github.chores import github_chores, github_reads_for  # the GitHub intake builds on chores

    chores += github_chores(config, db, github_reads_for(config))
    chores.append(
        Chore("error-retention", every=ERROR_PRUNE_INTERVAL, run=ErrorRetention(config, db), first_after=60.0)
    )
    return chores
