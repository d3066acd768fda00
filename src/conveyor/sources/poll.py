"""Polling: releases from repositories that cannot send webhooks (``poll: 60s`` on an app).

At every turn of an app, conveyor asks its remote where the app's branch points (``git ls-remote``, with
a timeout and no prompts, see :func:`conveyor.repos.branch_head`). A head with no release yet becomes one
(``create_release(app, ref=sha, actor="poll")``, which fetches the mirror), released at once: polling
knows nothing of CI (``ci: none``). A head that already has a release makes nothing, whether it is the
newest one or an older one the branch was force-pushed back to (an older release is redeployed by an
operator with ``conveyor deploy``, never by a poll); a force-push to a commit never released is a new
head like any other.

Invariants:

- each app is polled at its own interval, and by one worker per interval however many run the chore
  (:func:`conveyor.store.polls.take_turn`); a duplicate release is impossible anyway (one per sha);
- a remote that fails (refused, unknown host, timed out, branch gone) never stops another app: polls run
  on threads of their own, at most :data:`MAX_PARALLEL` at once and one per app, so neither a hanging
  remote nor a long fetch holds up the chores thread or the other apps;
- a failure is logged once per change of state (failing, then answering again), across all workers,
  and counted in ``source_polls`` (``conveyor_poll_failures_total``); every turn's answer is recorded
  there for ``why``, status and the metrics.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.operations import Operations
from conveyor.repos import LS_REMOTE_TIMEOUT, GitError, UnknownRef, branch_head, redact_url
from conveyor.store.database import Database
from conveyor.store.polls import record_turn, take_turn
from conveyor.store.tables import Release

MAX_PARALLEL = 8  # polls running at once in one process
CHORE_EVERY = 1.0  # seconds between looks at which apps are due (cheap: no I/O unless one is)
ACTOR = "poll"

log = logging.getLogger(__name__)

BranchHead = Callable[[str, str, float], "str | None"]


@dataclass
class Watch:
    """One polled app's schedule in this process."""

    app: str
    every: float
    next_at: datetime | None = None  # None: due now
    running: bool = False

    def due(self, now: datetime) -> bool:
        return not self.running and (self.next_at is None or now >= self.next_at)


class Poller:
    """Polls the remotes of every app with ``poll`` set; :meth:`run` is the chore."""

    def __init__(
        self,
        config: Config,
        db: Database,
        *,
        clock: Callable[[], datetime] = utc_now,
        timeout: float = LS_REMOTE_TIMEOUT,
        head_of: BranchHead = branch_head,
        owner: str | None = None,
        background: bool = True,
    ) -> None:
        self.config, self.db, self.clock = config, db, clock
        self.timeout, self.head_of = timeout, head_of
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.background = background  # False: polls run in run() itself (unit tests)
        self.operations = Operations(config, db, clock)
        self.watches = {a.name: Watch(a.name, a.poll) for a in config.apps.values() if a.poll is not None}
        self._lock = threading.Lock()
        self._released = False  # a poll finished since the last run() and made a release
        self._threads: list[threading.Thread] = []
        self._closed = False

    def run(self) -> bool:
        """Start the polls that are due; True if a poll made a release since the last call."""
        now = self.clock()
        with self._lock:
            running = sum(w.running for w in self.watches.values())
            due = [] if self._closed else [w for w in self.watches.values() if w.due(now)]
            due = due[: max(0, MAX_PARALLEL - running)]
            for watch in due:
                watch.running = True
            self._threads = [t for t in self._threads if t.is_alive()]
        for watch in due:
            if self.background:
                thread = threading.Thread(target=self._turn, args=(watch,), name=f"poll-{watch.app}", daemon=True)
                with self._lock:
                    self._threads.append(thread)
                thread.start()
            else:
                self._turn(watch)
        with self._lock:
            released, self._released = self._released, False
        return released

    def close(self, timeout: float) -> None:
        """Start no more polls; wait up to ``timeout`` seconds for those running (each ends within its
        git timeouts anyway)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in threads if t.is_alive()]
        if left:
            log.warning("stopping with polls still running: %s", ", ".join(left))

    def _turn(self, watch: Watch) -> None:
        try:
            released = self.poll(watch)
        except Exception:  # a bug must not stop this app's polling for good
            log.exception("polling %s failed", watch.app)
            released = False
            watch.next_at = self.clock() + timedelta(seconds=watch.every)
        with self._lock:
            watch.running = False
            self._released |= released

    def poll(self, watch: Watch) -> bool:
        """One turn of one app, if no other worker took it: ask the remote, release a new head.
        True if a release was made."""
        now = self.clock()
        turn = take_turn(self.db, watch.app, now, watch.every, self.owner)
        watch.next_at = turn.taken_at + timedelta(seconds=watch.every)
        if not turn.mine:
            return False
        app = self.config.app(watch.app)
        head: str | None = None
        try:
            head = self.head_of(app.repo, app.branch, self.timeout)
            if head is None:
                raise UnknownRef(app.branch, "the remote has no such branch")
            released = self._release(app.name, app.branch, head)
        except (GitError, UnknownRef) as exc:
            self._record(app.name, head, redact_url(str(exc)))
            return False
        self._record(app.name, head, None)
        return released

    def _release(self, app: str, branch: str, head: str) -> bool:
        with self.db.read() as session:
            known = session.scalar(select(Release.label).where(Release.app == app, Release.sha == head))
        if known is not None:
            return False  # the newest release, or an older one the branch went back to
        reason = f"new head {head[:12]} of {branch} seen by polling {redact_url(self.config.app(app).repo)}"
        result = self.operations.create_release(app, ref=head, actor=ACTOR, reason=reason)
        if result.created:
            log.info("polling %s: released %s (%s)", app, result.label, head[:12])
        return result.created

    def _record(self, app: str, head: str | None, error: str | None) -> None:
        before = record_turn(self.db, app, self.clock(), head=head, error=error)
        was_failing = before.failing_since is not None
        if error is not None and not was_failing:
            log.warning("polling %s fails: %s (logged again when it answers)", app, error)
        elif error is not None:
            log.debug("polling %s still fails: %s", app, error)
        elif before.failing_since is not None:
            since = before.failing_since.strftime("%Y-%m-%d %H:%M:%S")
            log.warning("polling %s answers again (it failed from %s UTC)", app, since)
