"""The sender: a thread that delivers due outbox rows through the notifier plugins, apart from all steps.

Every ``serve`` and ``worker`` process runs one (started by the Conductor). Each pass claims as many due
rows as its pool has free workers, hands them to the pool and goes back to waiting; a finished
delivery wakes it. A failed attempt is retried with backoff (:class:`~conveyor.notify.retry.RetryPolicy`,
each notifier's ``retry`` in the config) and given up after too many attempts or too long. Several
senders, in one process or on many machines, share the outbox safely (:mod:`conveyor.notify.outbox`).
Nothing a notifier does, raising included, escapes the sender: a broken notifier is a failed delivery,
never a failed deployment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from conveyor import plugins
from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.notifiers.base import DeliveryResult, Notifier
from conveyor.notify.outbox import ClaimedDelivery, OutboxQueue
from conveyor.notify.retry import RetryPolicy
from conveyor.notify.routing import Router
from conveyor.store.database import Database

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0  # how often rows older than their notifier's max_age are given up


def build_notifiers(config: Config) -> dict[str, Notifier]:
    """One instance of each configured notifier, with its validated options."""
    return {name: plugins.notifier_class(n.type)(n.options) for name, n in config.notifiers.items()}


class Sender:
    """Delivers every configured notifier's due rows; ``retry``, when given, replaces every notifier's
    configured policy (tests use it to make backoff fast)."""

    def __init__(
        self,
        config: Config,
        db: Database,
        *,
        owner: str,
        workers: int = 8,
        poll_interval: float = 0.5,
        lease_seconds: float = 120.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        notifiers: Mapping[str, Notifier] | None = None,
    ) -> None:
        self.config = config
        self.workers = workers
        self.poll_interval = poll_interval
        self._given: Mapping[str, Notifier] | None = notifiers
        self.notifiers: dict[str, Notifier] = {}
        self.queue = OutboxQueue(
            db,
            owner=owner,
            clock=clock,
            lease_seconds=lease_seconds,
            retry=retry or RetryPolicy(),
            team_of=Router.from_config(config).team,
            redact=config.redact,
            policies={} if retry else {name: n.retry for name, n in config.notifiers.items()},
        )
        self._in_flight = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._last_sweep = float("-inf")

    @property
    def enabled(self) -> bool:
        return bool(self.config.notifiers or self._given)

    def start(self) -> None:
        """Start delivering in a background thread; does nothing when no notifier is configured."""
        if not self.enabled or self._thread is not None:
            return
        self.notifiers = dict(self._given) if self._given is not None else build_notifiers(self.config)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="notify")
        self._thread = threading.Thread(target=self._loop, name="notify-sender", daemon=True)
        self._thread.start()

    def stop(self, drain: float = 0.0) -> None:
        """Stop claiming, let deliveries under way end (each is bounded by its notifier's timeout), close.

        With ``drain``, first keep delivering for up to that many seconds while anything is due or under
        way (``worker --exit-when-idle`` uses it); rows waiting out a backoff are left for later.
        """
        if self._thread is None or self._pool is None:
            return
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and (self._busy() or self.queue.anything_due(list(self.notifiers))):
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        for notifier in self.notifiers.values():
            try:
                notifier.close()
            except Exception:
                log.exception("closing notifier %s failed", type(notifier).__name__)
        self._thread = self._pool = None

    def _busy(self) -> bool:
        with self._lock:
            return self._in_flight > 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.tick()
            except Exception:
                # A database blip must not end delivery for the life of the process: try again later.
                log.exception("notification sender pass failed; retrying in %.1fs", self.poll_interval * 10)
                self._stop.wait(self.poll_interval * 10)
                continue
            if not claimed:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def tick(self) -> int:
        """Claim what is due and free workers can take, and hand it to the pool; returns how many."""
        assert self._pool is not None, "start() the sender first"
        if time.monotonic() - self._last_sweep >= SWEEP_SECONDS:
            self._last_sweep = time.monotonic()
            self.queue.give_up_stale()
        # The free slots count as in flight while the claim runs, so a drain in stop() never sees rows
        # that are already leased to us (no longer due) while nothing looks busy, and leaves too early.
        with self._lock:
            free = self.workers - self._in_flight
            self._in_flight += free
        claimed: list[ClaimedDelivery] = []
        try:
            claimed = self.queue.claim(list(self.notifiers), free)
        finally:
            with self._lock:
                self._in_flight -= free - len(claimed)
        for delivery in claimed:
            self._pool.submit(self._deliver, delivery)
        return len(claimed)

    def _deliver(self, claimed: ClaimedDelivery) -> None:
        try:
            notifier = self.notifiers[claimed.notifier]
            try:
                result = notifier.deliver(claimed.notification, claimed.ctx)
            except Exception as exc:
                log.exception("notifier %s raised; counted as a failed attempt", claimed.notifier)
                result = DeliveryResult(False, f"the notifier raised {type(exc).__name__}: {exc}")
            if not result.ok:
                log.info("notifying %s failed (attempt %d): %s", claimed.notifier, claimed.attempt, result.message)
            if not self.queue.finish(claimed, result):
                log.warning("delivery %s: result refused, the lease was lost", claimed.ctx.delivery_id)
        except Exception:
            log.exception("delivery %s: could not record its result; it will be retried", claimed.ctx.delivery_id)
        finally:
            with self._lock:
                self._in_flight -= 1
            self._wake.set()
