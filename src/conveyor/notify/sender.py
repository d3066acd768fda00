"""The sender: a thread that delivers due outbox rows through the notifier plugins, apart from all steps.

Every ``serve`` and ``worker`` process runs one (started by the Conductor). Each pass claims as many due
rows as its pool has free workers, hands them to the pool and goes back to waiting; a finished
delivery wakes it. A failed attempt is retried with backoff (:class:`~conveyor.config.retry.RetryPolicy`,
each notifier's ``retry`` in the config) and given up after too many attempts or too long. Several
senders, in one process or on many machines, share the outbox safely (:mod:`conveyor.notify.outbox`).
Nothing a notifier does, raising included, escapes the sender, and a notifier never changes a
deployment's outcome. A notifier reports a failed delivery by returning it; one whose constructor or
``deliver`` raises (anything, ``sys.exit()`` included) is broken: it is disabled in this process with one
error line and a ``notifier.disabled`` event (counted by the ``conveyor_notifiers_disabled_total``
metric), the delivery under way counts as a failed attempt, and its rows wait in the outbox for a
process where it works (a restart after the fix). The other notifiers go on.

Stopping never waits on a slow receiver for long: deliveries under way get ``IN_FLIGHT_GRACE`` seconds
to end, then their rows are handed back to the outbox (another process, or the next start, delivers
them: at least once, with the same delivery id) and the process may exit, since delivery threads are
daemons.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from conveyor import plugins
from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.config.retry import RetryPolicy
from conveyor.notifiers.base import DeliveryResult, Notifier
from conveyor.notify.outbox import ClaimedDelivery, OutboxQueue
from conveyor.notify.routing import Router
from conveyor.store.database import Database
from conveyor.store.events import record_event

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0  # how often rows older than their notifier's max_age are given up
IN_FLIGHT_GRACE = 2.0  # seconds stop() waits for deliveries under way before handing their rows back


def build_notifiers(config: Config) -> dict[str, Notifier]:
    """One instance of each configured notifier, with its validated options."""
    return {name: plugins.notifier_class(n.type).for_config(n.options, config) for name, n in config.notifiers.items()}


def _ordered_by_app(kind: str) -> bool:
    try:
        return bool(getattr(plugins.notifier_class(kind), "ordered_by_app", False))
    except Exception:  # not installed here, or broken: reported when the sender builds it
        return False


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
        self.db, self.owner, self.clock = db, owner, clock
        self.workers = workers
        self.poll_interval = poll_interval
        self._given: Mapping[str, Notifier] | None = notifiers
        self.notifiers: dict[str, Notifier] = {}
        self.disabled: dict[str, str] = {}  # notifier name -> why it was disabled in this process
        self._retired: list[Notifier] = []
        self.queue = OutboxQueue(
            db,
            owner=owner,
            clock=clock,
            lease_seconds=lease_seconds,
            retry=retry or RetryPolicy(),
            team_of=Router.from_config(config).team,
            redact=config.redact,
            policies={} if retry else {name: n.retry for name, n in config.notifiers.items()},
            by_app=[name for name, n in config.notifiers.items() if _ordered_by_app(n.type)],
        )
        self._in_flight = 0  # claimed or being claimed, not yet finished
        self._delivering: dict[int, ClaimedDelivery] = {}  # by outbox row id
        self._handed_back: set[int] = set()  # rows stop() released while their delivery was under way
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[ClaimedDelivery | None] = queue.SimpleQueue()  # None: a worker ends
        self._pool: list[threading.Thread] = []
        self._last_sweep = float("-inf")

    @property
    def enabled(self) -> bool:
        return bool(self.config.notifiers or self._given)

    def start(self) -> None:
        """Start delivering in a background thread; does nothing when no notifier is configured."""
        if not self.enabled or self._thread is not None:
            return
        self.notifiers = dict(self._given) if self._given is not None else self._build_notifiers()
        self._pool = [threading.Thread(target=self._work, name=f"notify-{i}", daemon=True) for i in range(self.workers)]
        for worker in self._pool:
            worker.start()
        self._thread = threading.Thread(target=self._loop, name="notify-sender", daemon=True)
        self._thread.start()

    def _build_notifiers(self) -> dict[str, Notifier]:
        """Each configured notifier; one whose constructor raises is disabled, the others still work."""
        built: dict[str, Notifier] = {}
        for name, entry in self.config.notifiers.items():
            try:
                built[name] = plugins.notifier_class(entry.type).for_config(entry.options, self.config)
            except BaseException as exc:  # a broken notifier plugin never stops the process
                self._disable(name, f"could not be created: {_one_line(exc)}", exc)
        return built

    def _disable(self, name: str, why: str, exc: BaseException) -> None:
        """Stop using a broken notifier in this process: one log line (the traceback at debug level), one
        event. Its rows stay in the outbox."""
        with self._lock:
            instance = self.notifiers.pop(name, None)
            if instance is not None:
                self._retired.append(instance)  # closed on stop, like the others
            self.disabled[name] = why
        why = self.config.redact(why)
        log.error("notifier %s disabled: it %s; deployments go on without it", name, why)
        log.debug("notifier %s: the error", name, exc_info=exc)
        try:
            with self.db.write() as session:
                record_event(
                    session,
                    "notifier.disabled",
                    at=self.clock(),
                    actor=self.owner,
                    message=f"notifier {name} disabled: it {why}",
                    payload={"notifier": name},
                )
        except Exception:
            log.exception("could not record that notifier %s was disabled", name)

    def stop(self, drain: float = 0.0) -> None:
        """Stop claiming, give deliveries under way ``IN_FLIGHT_GRACE`` seconds, hand back the rest, close.

        With ``drain``, first keep delivering for up to that many seconds while anything is due or under
        way (``worker --exit-when-idle`` uses it); rows waiting out a backoff are left for later.
        """
        if self._thread is None:
            return
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and (self._busy() or self.queue.anything_due(self._enabled())):
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join()
        for _ in self._pool:
            self._jobs.put(None)  # each worker ends after the delivery it is on
        grace = time.monotonic() + IN_FLIGHT_GRACE
        while self._busy() and time.monotonic() < grace:
            time.sleep(0.02)
        with self._lock:
            left = list(self._delivering.values())
        if left:
            log.warning("handing %d delivery(ies) still under way back to the outbox", len(left))
            with self._lock:
                self._handed_back.update(d.row_id for d in left)
            self.queue.release(left)
        for notifier in [*self.notifiers.values(), *self._retired]:
            try:
                notifier.close()
            except BaseException:
                log.exception("closing notifier %s failed", type(notifier).__name__)
        self._thread, self._pool = None, []

    def _enabled(self) -> list[str]:
        with self._lock:
            return list(self.notifiers)

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
        assert self._pool, "start() the sender first"
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
            claimed = self.queue.claim(self._enabled(), free)
        finally:
            with self._lock:
                self._in_flight -= free - len(claimed)
        for delivery in claimed:
            with self._lock:
                self._delivering[delivery.row_id] = delivery
            self._jobs.put(delivery)
        return len(claimed)

    def _work(self) -> None:
        """One delivery thread: takes claimed rows until told to end."""
        while (claimed := self._jobs.get()) is not None:
            if self._stop.is_set():  # stopping: not started, so left in _delivering for stop() to hand back
                with self._lock:
                    self._in_flight -= 1
                continue
            self._deliver(claimed)

    def _deliver(self, claimed: ClaimedDelivery) -> None:
        try:
            with self._lock:
                notifier = self.notifiers.get(claimed.notifier)
            broken: BaseException | None = None
            if notifier is None:
                result = DeliveryResult(False, f"notifier {claimed.notifier} is disabled in this process")
            else:
                try:
                    result = notifier.deliver(claimed.notification, claimed.ctx)
                except BaseException as exc:  # a broken notifier plugin never stops the process
                    broken = exc
                    result = DeliveryResult(False, f"the notifier raised {_one_line(exc)}")
            if broken is not None:
                self._disable(claimed.notifier, f"raised {_one_line(broken)}", broken)
            if not result.ok:
                log.info("notifying %s failed (attempt %d): %s", claimed.notifier, claimed.attempt, result.message)
            with self._lock:
                handed_back = claimed.row_id in self._handed_back
            if handed_back:  # after stop(): the row is no longer ours, and the store may be closed
                log.info("delivery %s ended after it was handed back; not recorded", claimed.ctx.delivery_id)
            elif not self.queue.finish(claimed, result):
                log.warning("delivery %s: result refused, the lease was lost", claimed.ctx.delivery_id)
        except Exception:
            log.exception("delivery %s: could not record its result; it will be retried", claimed.ctx.delivery_id)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._delivering.pop(claimed.row_id, None)
            self._wake.set()
