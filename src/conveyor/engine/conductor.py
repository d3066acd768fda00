"""The conductor: one process's loop of reaper, planner and runner.

Each tick re-queues steps whose lease expired, plans until the plan stops changing state (so a success
becomes a promotion and a start within one tick), then claims as many due steps as it has free slots
and runs them on a thread pool: deploys and checks wait on subprocesses and HTTP, so threads give real
concurrency. A heartbeat thread extends the leases of running steps and flushes their logs; a step
whose lease was lost is told to stop.

Several conductors, in one process or on several machines, may share one PostgreSQL database: claims
use ``SKIP LOCKED``, planner passes are serialised by an advisory lock, and every write is fenced.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.domain.decisions import Note, Start
from conveyor.domain.model import DeploymentState, StepState
from conveyor.domain.planner import plan_next
from conveyor.engine.executor import Executor, StepLog
from conveyor.engine.leases import ClaimedStep, Leases, StepResult
from conveyor.engine.orchestrator import Orchestrator
from conveyor.notify.routing import install as install_router
from conveyor.notify.sender import Sender
from conveyor.steps import StepContext
from conveyor.store.database import Database
from conveyor.store.snapshot import app_policies, load_snapshot
from conveyor.store.tables import Deployment, Event, Step

log = logging.getLogger(__name__)

MAX_PLAN_ROUNDS = 10
RESULT_BATCH = 100
REPLAN_SECONDS = 2.0
RETRY_SECONDS = 0.02  # when another process held the planner lock


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class RunningStep:
    claimed: ClaimedStep
    ctx: StepContext
    log: StepLog
    future: Future[None] | None = None


class Conductor:
    def __init__(
        self,
        config: Config,
        db: Database,
        *,
        concurrency: int = 64,
        lease_seconds: float = 15.0,
        poll_interval: float = 0.25,
        grace_seconds: float = 30.0,
        owner: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        on_step: Callable[[ClaimedStep, StepResult | None], None] | None = None,
        sender: Sender | None = None,
    ) -> None:
        self.config, self.db, self.clock = config, db, clock
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.grace_seconds = grace_seconds
        self.owner = owner or worker_id()
        self.orchestrator = Orchestrator(db, clock)
        self.leases = Leases(db, clock, self.owner, lease_seconds)
        self.executor = Executor(config)
        self.policies = app_policies(config)
        self.on_step = on_step
        install_router(db, config)  # events written from here on notify whom the config says
        self.sender = sender or Sender(config, db, owner=self.owner)  # delivers notifications, apart from steps
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="step")
        self._running: dict[int, RunningStep] = {}
        self._running_lock = threading.Lock()
        # step results for the writer thread; None tells it to finish what is queued and stop
        self._results: queue.SimpleQueue[tuple[RunningStep, StepResult] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_results, name="results", daemon=True)
        self._wake = threading.Event()
        self._stop_claiming = threading.Event()
        self._last_reap = float("-inf")
        self._settled_marker = -1
        self._retry_soon = False
        self._replan_at = 0.0

    # -- one tick ---------------------------------------------------------------------------------

    def plan(self, *, claim: bool = False) -> bool:
        """Plan and apply until nothing changes; True if any state changed.

        Every change of state writes an Event, so when no Event was appended (by any process) since the
        last pass that changed nothing, the plan would be the same: the pass is skipped, except once every
        ``REPLAN_SECONDS`` for what time alone changes (a hold's ``until`` passing).

        With ``claim``, a pass that started deployments is followed at once by claiming their steps, so
        they begin while the successes that came in meanwhile are still being planned.
        """
        changed = False
        for _ in range(MAX_PLAN_ROUNDS):
            marker = self._change_marker()
            if not changed and marker == self._settled_marker and time.monotonic() < self._replan_at:
                return False
            with self.db.planning() as may_plan:
                if not may_plan:
                    self._retry_soon = True  # another process is planning; look again in a moment
                    return changed
                plan = plan_next(load_snapshot(self.db, self.config, self.policies), self.clock())
                applied = self.orchestrator.apply_all(plan.intents)
            done = [i for ok, i in zip(applied, plan.intents, strict=True) if ok and not isinstance(i, Note)]
            if not done:
                self._settled_marker = marker
                self._replan_at = time.monotonic() + REPLAN_SECONDS
                break
            changed = True
            if claim and any(isinstance(i, Start) for i in done):
                self._claim()
        return changed

    def _change_marker(self) -> int:
        with self.db.read() as session:
            return session.scalar(select(func.max(Event.id))) or 0

    def tick(self) -> bool:
        reaped = self._reap_if_due()
        changed = self.plan(claim=True)
        claimed = self._claim()
        return bool(reaped or changed or claimed)

    def _reap_if_due(self) -> int:
        """Expired leases are looked for about once a second, not on every tick: a lease lasts many seconds."""
        now = time.monotonic()
        if now - self._last_reap < min(1.0, self.lease_seconds / 3):
            return 0
        self._last_reap = now
        return self.leases.reap()

    def _claim(self) -> int:
        if self._stop_claiming.is_set():
            return 0
        with self._running_lock:
            free = self.concurrency - len(self._running)
        steps = self.leases.claim(free)
        for step in steps:
            running = RunningStep(step, StepContext(), StepLog(self.config.redact))
            running.ctx.log = running.log
            with self._running_lock:
                self._running[step.step_id] = running
            running.future = self._pool.submit(self._run_step, running)
        return len(steps)

    def _run_step(self, running: RunningStep) -> None:
        """Run one step on a pool thread and queue its result for the result writer."""
        result = self.executor.run(running.claimed, running.ctx)  # never raises: a crash is a failed result
        if running.ctx.cancelled.is_set() and result.ok:
            result = StepResult(False, "cancelled", result.measurements, result.result)
        self._results.put((running, result))

    def _write_results(self) -> None:
        """The one thread that records step results, in batches: whatever finished meanwhile goes into
        one transaction. The step stays "running" here (and heartbeated) until its result is stored."""
        stopping = False
        while not stopping:
            item = self._results.get()
            batch = [] if item is None else [item]
            stopping = item is None
            while not self._results.empty() and len(batch) < RESULT_BATCH:
                item = self._results.get_nowait()
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                self._record(batch)

    def _record(self, batch: list[tuple[RunningStep, StepResult]]) -> None:
        items = [(r.claimed, result, r.log.drain()) for r, result in batch]
        try:
            accepted = self.leases.finish_claimed(items)
        except Exception:
            log.exception("could not record %d step result(s); the reaper will re-queue them", len(batch))
            accepted = [False] * len(batch)
        with self._running_lock:
            for r, _ in batch:
                self._running.pop(r.claimed.step_id, None)
        for (r, result), ok in zip(batch, accepted, strict=True):
            if not ok:
                step = r.claimed
                log.warning("step %s attempt %s: result refused, the lease was lost", step.step_id, step.attempt)
            if self.on_step is not None:
                self.on_step(r.claimed, result if ok else None)
        self._wake.set()

    # -- heartbeat ----------------------------------------------------------------------------------

    def heartbeat_once(self) -> None:
        with self._running_lock:
            running = list(self._running.values())
        if not running:
            return
        pairs = [(r.claimed.step_id, r.claimed.attempt) for r in running]
        logs = {r.claimed.step_id: r.log.drain() for r in running}
        lost = self.leases.heartbeat(pairs, logs)
        with self._running_lock:
            still_running = set(self._running)
        for r in running:
            # a step that finished between our snapshot and the heartbeat is not lost, just done
            if r.claimed.step_id in lost and r.claimed.step_id in still_running:
                log.warning("step %s: lease lost or deployment cancelled; stopping it", r.claimed.step_id)
                r.ctx.cancelled.set()

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease_seconds / 3):
            try:
                self.heartbeat_once()
            except Exception:
                log.exception("heartbeat failed; will retry")

    # -- the loop -------------------------------------------------------------------------------------

    def idle(self) -> bool:
        """Nothing to do anywhere: no step queued or running, no deployment pending or in progress."""
        with self._running_lock:
            if self._running:
                return False
        busy_states = [DeploymentState.PENDING.value, *(s.value for s in DeploymentState if s.active)]
        with self.db.read() as session:
            steps = session.scalar(
                select(func.count())
                .select_from(Step)
                .where(Step.state.in_([StepState.QUEUED.value, StepState.RUNNING.value]))
            )
            deployments = session.scalar(
                select(func.count()).select_from(Deployment).where(Deployment.state.in_(busy_states))
            )
        return not steps and not deployments

    def _confirmed_idle(self) -> bool:
        """Idle, and still idle after a full planner pass that ignores the change marker: a worker about to
        exit must not leave behind a promotion or start that a skipped pass would have made."""
        if not self.idle():
            return False
        self._settled_marker = -1
        if self.plan() or self._retry_soon:
            return False
        return self.idle()

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event, *, exit_when_idle: bool = False) -> None:
        hb_stop = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat_loop, args=(hb_stop,), name="heartbeat", daemon=True)
        heartbeat.start()
        self._writer.start()
        self.sender.start()
        try:
            while not stop.is_set():
                try:
                    progressed = self.tick()
                    retry_soon, self._retry_soon = self._retry_soon, False
                    if exit_when_idle and not progressed and not retry_soon and self._confirmed_idle():
                        break
                except Exception:
                    # A database blip or a bug in one intent must not stop the whole loop; the next
                    # tick re-plans from the store, which holds every bit of state.
                    log.exception("tick failed; retrying in %.1fs", self.poll_interval * 10)
                    stop.wait(self.poll_interval * 10)
                    continue
                if not progressed:
                    self._wake.wait(min(self.poll_interval, RETRY_SECONDS) if retry_soon else self.poll_interval)
                    self._wake.clear()
        finally:
            self.shutdown()
            hb_stop.set()
            heartbeat.join(timeout=5)
            self.sender.stop(drain=5.0 if exit_when_idle and not stop.is_set() else 0.0)

    def shutdown(self) -> None:
        """Stop claiming; let running steps finish within the grace period; hand back the rest."""
        self._stop_claiming.set()
        deadline = self.clock().timestamp() + self.grace_seconds
        while self.clock().timestamp() < deadline:
            with self._running_lock:
                if not self._running:
                    break
            self.heartbeat_once()
            self._wake.wait(0.2)
            self._wake.clear()
        with self._running_lock:
            left = list(self._running.values())
        if left:
            log.warning("grace period over: handing %d running step(s) back to the queue", len(left))
            # Hand the steps back first, so the cancelled runs' own results are refused by the fencing.
            self.leases.release((r.claimed.step_id, r.claimed.attempt) for r in left)
            for r in left:
                r.ctx.cancelled.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._results.put(None)  # after the pool's shutdown, so every result is queued before it
        if self._writer.is_alive():
            self._writer.join(timeout=30)
