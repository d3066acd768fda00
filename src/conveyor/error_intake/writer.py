"""Group commit for the intake: the events of every request waiting together are written in one transaction.

A request hands its events to :meth:`EventWriter.submit` and waits for the returned future; a writer
thread takes everything waiting (up to ``max_batch`` events), writes it with
:func:`conveyor.store.error_events.record_batch` and then resolves the futures. While it writes, the next
batch gathers, so the transaction rate stays low however many requests arrive, and no request is answered
before its events are committed (a crash loses nothing an SDK was told was stored).

The thread starts with the first submission and ends after ``idle`` seconds without one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from conveyor.clock import utc_now
from conveyor.domain.error_spikes import SpikeRule
from conveyor.store.database import Database
from conveyor.store.error_events import IncomingEvent, record_batch

log = logging.getLogger(__name__)


class EventWriter:
    def __init__(
        self,
        db: Database,
        spike: SpikeRule,
        *,
        link: Callable[[str], str] = lambda path: path,
        clock: Callable[[], datetime] = utc_now,
        max_batch: int = 2000,
        idle: float = 2.0,
    ) -> None:
        self.db, self.spike, self.link, self.clock = db, spike, link, clock
        self.max_batch, self.idle = max_batch, idle
        self._waiting: deque[tuple[Sequence[IncomingEvent], Future[None]]] = deque()
        self._ready = threading.Condition()
        self._running = False
        self.batches = 0  # transactions written (for tests and the benchmark)

    def submit(self, events: Sequence[IncomingEvent]) -> Future[None]:
        """A future resolved once ``events`` are committed (or failed with the store's error)."""
        future: Future[None] = Future()
        with self._ready:
            self._waiting.append((events, future))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="error-intake-writer", daemon=True).start()
            self._ready.notify()
        return future

    def _take(self) -> list[tuple[Sequence[IncomingEvent], Future[None]]]:
        with self._ready:
            if not self._waiting and not self._ready.wait_for(lambda: bool(self._waiting), timeout=self.idle):
                self._running = False  # under the lock: a submit after this starts a new thread
                return []
            taken: list[tuple[Sequence[IncomingEvent], Future[None]]] = []
            count = 0
            while self._waiting and (not taken or count + len(self._waiting[0][0]) <= self.max_batch):
                item = self._waiting.popleft()
                taken.append(item)
                count += len(item[0])
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            if not taken:
                return
            self._write(taken)

    def _write(self, taken: list[tuple[Sequence[IncomingEvent], Future[None]]]) -> None:
        events = [event for batch, _ in taken for event in batch]
        try:
            try:
                self._record(events)
            except IntegrityError:
                # An issue the batch found was deleted by the retention chore before the batch's events
                # referred to it: written again, the batch makes that issue anew.
                self._record(events)
        except Exception as exc:
            log.warning("could not store %d error event(s): %s", len(events), exc)
            for _, future in taken:
                future.set_exception(exc)
            return
        for _, future in taken:
            future.set_result(None)

    def _record(self, events: list[IncomingEvent]) -> None:
        with self.db.write() as session:
            record_batch(session, events, now=self.clock(), spike=self.spike, link=self.link)
        self.batches += 1
