"""The conductor: one process's loop of reaper, planner and runner.

Each tick re-queues steps whose lease expired, plans until the plan stops changing state (so a success
becomes a promotion and a start within one tick), then claims as many due steps as it has free slots and
runs each on a thread (:mod:`conveyor.engine.step_threads`): deploys and checks wait on subprocesses and
HTTP, so threads give real concurrency. A deploy whose driver is a coroutine runs as a task on one event
loop instead (:mod:`conveyor.engine.step_loop`), with no thread of its own. A round that started
deployments claims their steps at once and, unless results came in meanwhile, lets their threads take
them before the next round (which would only read back the round's own writes): under one interpreter
lock, that round delayed the last of a thousand steps by tens of milliseconds. A heartbeat thread
extends the leases of running steps and flushes their logs. Periodic work beside the steps (webhook
intake, polling, pruning) runs as chores (:mod:`conveyor.engine.chores`) on a thread of their own.

A step is told to stop (``ctx.cancelled``) when its lease was lost or its ``step_timeout`` passed; one
past its deadline fails with outcome "timed out after ...". A plugin that still has not returned
``STOP_GRACE`` seconds later is abandoned: its thread is left to end on its own (it is a daemon), the
step's timeout is recorded and its locks freed, and whatever it returns later is refused by the fencing
like any late result. Abandoned threads are logged and counted (:attr:`Conductor.abandoned`); a timeout
is also an Event (``step.timed_out``) that the metrics count.

Several conductors, in one process or on several machines, may share one PostgreSQL database: claims
use ``SKIP LOCKED``, planner passes are serialised by an advisory lock, and every write is fenced.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import func, select

from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.domain.decisions import CancelSteps, Intent, Note, Promote, Start
from conveyor.domain.model import DeploymentState, StepState
from conveyor.domain.planner import plan_next
from conveyor.domain.snapshot import Snapshot
from conveyor.engine.chores import Chore, Chores, chores_for
from conveyor.engine.executor import Executor
from conveyor.engine.leases import ClaimedStep, Leases, StepResult
from conveyor.engine.orchestrator import Orchestrator
from conveyor.engine.step_log import StepLog
from conveyor.engine.step_loop import StepLoop, TaskHandle
from conveyor.engine.step_threads import StepThreads
from conveyor.notify.routing import install as install_router
from conveyor.notify.sender import Sender
from conveyor.steps import StepContext
from conveyor.store.database import Database
from conveyor.store.snapshot import SnapshotReader, app_policies
from conveyor.store.tables import Deployment, Event, Step
from conveyor.supervisor import KILL_GRACE

log = logging.getLogger(__name__)

MAX_PLAN_ROUNDS = 10
RESULT_BATCH = 1000
# How long the result writer waits for more results after the first one: steps started together end
# together, and recording them in one transaction saves a planner pass per transaction avoided. It stops
# waiting once no result came for RESULT_LULL_SECONDS: a burst has ended, and the last result of a burst
# should not wait for ones that are not coming.
RESULT_GATHER_SECONDS = 0.02
RESULT_LULL_SECONDS = 0.004
PLAN_DEFER_SECONDS = 0.1  # the longest a planner pass waits for results being recorded
REPLAN_SECONDS = 2.0
RETRY_SECONDS = 0.02  # when another process held the planner lock
STEP_START_WAIT = 0.25  # the longest the loop waits for the threads of steps it just claimed to take them
STOP_GRACE = 10.0  # seconds a step told to stop gets to return before its thread is abandoned
GC_THRESHOLDS = (10_000, 20, 20)  # the cyclic collector's, while the loop runs (see run())
DEFAULT_CONCURRENCY = 1024  # steps mostly wait (subprocesses, HTTP, sleeps): a waiting thread costs little


def _app_of(intent: Intent, snapshot: Snapshot) -> str | None:
    if intent.decision is not None:
        return intent.decision.app
    deployment = snapshot.open_by_id.get(getattr(intent, "deployment_id", -1))
    return deployment.app if deployment else None


def _starts(intent: Intent) -> bool:
    """Applying ``intent`` starts a deployment (so its steps are there to claim)."""
    return isinstance(intent, Start) or (isinstance(intent, Promote) and intent.then_start is not None)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class RunningStep:
    """One claimed step on its thread. ``settled`` (under the conductor's lock) says its result was
    queued or it was abandoned; a second result (a late one, after abandoning) goes to the fencing only."""

    claimed: ClaimedStep
    ctx: StepContext
    log: StepLog
    timeout: float  # its step_timeout, in seconds
    deadline: float  # time.monotonic() when it times out
    done: threading.Event = field(default_factory=threading.Event)  # its plugin returned
    stop_asked_at: float | None = None  # time.monotonic() when it was told to stop
    verdict: StepResult | None = None  # recorded instead of what the plugin returns (it timed out)
    settled: bool = False
    late: bool = False  # the result of an abandoned run
    handed_back: bool = False  # released to the queue by this worker's shutdown: its result is refused
    renewed_at: float = 0.0  # time.monotonic() just before the claim or heartbeat that last renewed its lease
    task: TaskHandle | None = None  # its task on the step loop, when it runs as a coroutine


class Conductor:
    def __init__(
        self,
        config: Config,
        db: Database,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        lease_seconds: float = 15.0,
        poll_interval: float = 0.25,
        grace_seconds: float = 30.0,
        stop_grace: float = STOP_GRACE,
        owner: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        on_step: Callable[[ClaimedStep, StepResult | None], None] | None = None,
        sender: Sender | None = None,
        chores: list[Chore] | None = None,
    ) -> None:
        self.config, self.db, self.clock = config, db, clock
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.grace_seconds = grace_seconds
        self.stop_grace = stop_grace
        self.owner = owner or worker_id()
        self.orchestrator = Orchestrator(db, clock)
        self.leases = Leases(db, clock, self.owner, lease_seconds)
        self.executor = Executor(config, db)
        self.policies = app_policies(config)
        self.snapshots = SnapshotReader(db, config, self.policies)
        self.on_step = on_step
        install_router(db, config)  # events written from here on notify whom the config says
        self.sender = sender or Sender(config, db, owner=self.owner)  # delivers notifications, apart from steps
        # periodic work beside the steps (intake, polling, pruning), on a thread of its own
        self.chores = Chores(chores_for(config, db) if chores is None else chores, self.wake)
        self._threads = StepThreads()
        self._loop = StepLoop()
        self._running: dict[int, RunningStep] = {}
        self._abandoned: list[RunningStep] = []
        self._running_lock = threading.Lock()
        # step results for the writer thread; None tells it to finish what is queued and stop
        self._results: queue.SimpleQueue[tuple[RunningStep, StepResult] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_results, name="results", daemon=True)
        self._wake = threading.Event()
        self._stop_claiming = threading.Event()
        self._last_reap = float("-inf")
        self._recording = False  # the result writer holds results it has not stored yet
        self._results_stored = 0  # batches of results the writer has stored
        self._deferred_since: float | None = None
        self._settled_marker = -1
        self._retry_soon = False
        self._replan_at = 0.0

    # -- one tick ---------------------------------------------------------------------------------

    def plan(self, *, claim: bool = False) -> bool:
        """Plan and apply until nothing changes; True if any state changed.

        Every change of state writes an Event, so when no Event was appended (by any process) since the
        last pass that changed nothing, the plan would be the same: the pass is skipped, except once every
        ``REPLAN_SECONDS`` for what time alone changes (a hold's ``until`` passing).

        With ``claim``, each committed batch of intents that started deployments is followed at once by
        claiming their steps: the first deployments of a large pass begin while the rest of it is still
        being applied, and their ends come back spread out, not all at once.
        """
        changed = False
        for _ in range(MAX_PLAN_ROUNDS):
            stored = self._results_stored
            marker = self._change_marker()
            if not changed and marker == self._settled_marker and time.monotonic() < self._replan_at:
                return False
            claimed = 0

            def claim_started(batch: Sequence[Intent], applied: list[bool]) -> None:
                nonlocal claimed
                if any(ok and _starts(i) for ok, i in zip(applied, batch, strict=True)):
                    claimed += self._claim()

            with self.db.planning() as may_plan:
                if not may_plan:
                    self._retry_soon = True  # another process is planning; look again in a moment
                    return changed
                snapshot = self.snapshots.load()
                plan = plan_next(snapshot, self.clock())
                applied = self.orchestrator.apply_all(plan.intents, committed=claim_started if claim else None)
            # A change of state writes an Event, so the next snapshot reads its app again. A decision
            # recorded alone (a Note) writes none, and an intent refused wrote nothing at all while the
            # snapshot may have been behind: their apps are read again too.
            self.snapshots.touch(
                _app_of(i, snapshot)
                for ok, i in zip(applied, plan.intents, strict=True)
                if isinstance(i, Note) or not ok
            )
            done = [i for ok, i in zip(applied, plan.intents, strict=True) if ok and not isinstance(i, Note)]
            self._stop_here(i for i in done if isinstance(i, CancelSteps))
            if not done:
                self._settled_marker = marker
                self._replan_at = time.monotonic() + REPLAN_SECONDS
                break
            changed = True
            if claimed and not self._results_since(stored):
                # The next round would only read back this pass's own writes: the steps just claimed go
                # first, since their users wait on them.
                self._threads.wait_taken(STEP_START_WAIT)
        return changed

    def _stop_here(self, cancels: Iterable[CancelSteps]) -> None:
        """Steps asked to stop that run in this process stop now, not at the next heartbeat."""
        ids = {step_id for c in cancels for step_id in c.stop}
        if not ids:
            return
        with self._running_lock:
            here = [r for step_id, r in self._running.items() if step_id in ids and not r.settled]
        now = time.monotonic()
        for r in here:
            self._ask_to_stop(r, now)

    def _results_since(self, stored: int) -> bool:
        """Step results were stored since the writer's count was ``stored``, or are being stored."""
        return self._results_stored != stored or self._recording or not self._results.empty()

    def _change_marker(self) -> int:
        with self.db.peek() as conn:
            return conn.scalar(select(func.max(Event.id))) or 0

    def tick(self) -> bool:
        self.enforce_deadlines()
        reaped = self._reap_if_due()
        changed = False
        if not self._defer_planning():
            changed = self.plan(claim=True)
        claimed = self._claim()
        return bool(reaped or changed or claimed)

    def _defer_planning(self) -> bool:
        """While results are being recorded, plan a little later: steps started together end together,
        and one pass over all of their results costs what a pass over the first few does. Never for
        longer than ``PLAN_DEFER_SECONDS`` in a row; the writer wakes the loop when it is done."""
        now = time.monotonic()
        if not (self._recording or not self._results.empty()):
            self._deferred_since = None
            return False
        if self._deferred_since is None:
            self._deferred_since = now
        return now - self._deferred_since < PLAN_DEFER_SECONDS

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
        self.leases.claim_events = None
        asked = time.monotonic()  # the leases start no earlier than this
        steps = self.leases.claim(free)
        if self.leases.claim_events is not None and self.leases.claim_events[0] == self._settled_marker:
            self._settled_marker = self.leases.claim_events[1]  # our step.started events change no plan
        on_loop: list[RunningStep] = []
        for step in steps:
            timeout = self.executor.step_timeout(step)
            running = RunningStep(step, StepContext(), StepLog(self.config.redact), timeout, time.monotonic() + timeout)
            running.renewed_at = asked
            running.ctx.log = running.log
            with self._running_lock:
                self._running[step.step_id] = running
            if self.executor.runs_async(step):
                on_loop.append(running)
            else:
                self._threads.submit(functools.partial(self._run_step, running))
        if on_loop:
            handles = self._loop.submit_all([functools.partial(self._run_step_async, r) for r in on_loop])
            for running, handle in zip(on_loop, handles, strict=True):
                running.task = handle
        return len(steps)

    def _run_step(self, running: RunningStep) -> None:
        """Run one step on a step thread and queue its result for the result writer."""
        result = StepResult(False, f"{running.claimed.kind} ended without a result", [], {})
        try:
            result = self.executor.run(running.claimed, running.ctx)  # never raises: a crash is a failed result
        finally:
            running.done.set()
            self._settle(running, result)

    async def _run_step_async(self, running: RunningStep) -> None:
        """Run one coroutine step on the step loop and queue its result; a task cancelled after its step
        was abandoned ends like an abandoned thread, its result refused."""
        result = StepResult(False, f"{running.claimed.kind} ended without a result", [], {})
        try:
            result = await self.executor.run_async(running.claimed, running.ctx)
        finally:
            running.done.set()
            self._settle(running, result)

    def _settle(self, running: RunningStep, result: StepResult) -> None:
        with self._running_lock:
            running.late, running.settled = running.settled, True
            verdict = running.verdict
        if running.late:
            log.warning(
                "step %s attempt %s: its abandoned run returned after all (%s); handing its result to the fencing",
                running.claimed.step_id,
                running.claimed.attempt,
                result.outcome,
            )
        elif verdict is not None:
            result = replace(verdict, measurements=result.measurements)
        elif running.ctx.cancelled.is_set() and result.ok:
            result = StepResult(False, "cancelled", result.measurements, result.result)
        self._results.put((running, result))

    # -- deadlines ------------------------------------------------------------------------------------

    def enforce_deadlines(self) -> None:
        """Tell steps past their ``step_timeout`` to stop; abandon those told ``stop_grace`` ago that still run."""
        now = time.monotonic()
        with self._running_lock:
            running = [r for r in self._running.values() if not r.settled]
            overdue = [r for r in running if r.stop_asked_at is None and now >= r.deadline]
            for r in overdue:
                r.verdict = StepResult(False, f"timed out after {r.timeout:g}s (step_timeout)", [], {"timed_out": True})
        for r in overdue:
            c = r.claimed
            log.warning(
                "step %s (%s %s, %s %s) timed out after %gs; stopping it",
                c.step_id,
                c.app,
                c.environment,
                c.kind,
                c.name,
                r.timeout,
            )
            r.log(f"timed out after {r.timeout:g}s (step_timeout); stopping")
            self._ask_to_stop(r, now)
        for r in running:
            if r.stop_asked_at is not None and now - r.stop_asked_at >= self.stop_grace:
                self._abandon(r)

    def _ask_to_stop(self, running: RunningStep, now: float) -> None:
        if running.stop_asked_at is None:
            running.stop_asked_at = now
        running.ctx.cancelled.set()

    def _abandon(self, running: RunningStep) -> None:
        """Give up on a step's thread that ignores being told to stop: record its timeout (if it timed out;
        a step whose lease was lost is no longer ours to record) and stop counting it as running."""
        with self._running_lock:
            if running.settled:
                return
            running.settled = True
            verdict = running.verdict
            self._abandoned = [r for r in self._abandoned if not r.done.is_set()]  # those that returned go
            self._abandoned.append(running)
            if verdict is None and self._running.get(running.claimed.step_id) is running:
                del self._running[running.claimed.step_id]
            if verdict is not None:
                # queued under the lock: the plugin's own late result, should it return now, is queued
                # after this one (its _settle waits for the lock) and refused as the second of its attempt
                outcome = f"{verdict.outcome}; abandoned after ignoring the stop for {self.stop_grace:g}s"
                self._results.put((running, StepResult(False, outcome, [], {**verdict.result, "abandoned": True})))
        if running.task is not None:
            running.task.cancel()  # a coroutine is cancelled at its next await (one that blocks the loop is not)
        c = running.claimed
        log.error(
            "step %s attempt %s (%s %s, %s %s): the plugin ignored being told to stop for %gs;"
            " abandoning its %s (%d abandoned steps still running in this process)",
            c.step_id,
            c.attempt,
            c.app,
            c.environment,
            c.kind,
            c.name,
            self.stop_grace,
            "thread" if running.task is None else "task, cancelling it",
            len(self._abandoned),
        )
        self._wake.set()

    @property
    def abandoned(self) -> int:
        """Threads of abandoned steps that are still running in this process."""
        with self._running_lock:
            return sum(1 for r in self._abandoned if not r.done.is_set())

    def _write_results(self) -> None:
        """The one thread that records step results, in batches: whatever finished meanwhile goes into
        one transaction. The step stays "running" here (and heartbeated) until its result is stored."""
        stopping = False
        while not stopping:
            item = self._results.get()
            self._recording = True
            batch = [] if item is None else [item]
            stopping = item is None
            gather_until = time.monotonic() + RESULT_GATHER_SECONDS
            while not stopping and len(batch) < RESULT_BATCH:
                try:
                    wait = min(RESULT_LULL_SECONDS, gather_until - time.monotonic())
                    item = self._results.get(timeout=max(0.0, wait))
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                self._record(batch)
                self._results_stored += 1
            self._recording = False
            self._wake.set()

    def _record(self, batch: list[tuple[RunningStep, StepResult]]) -> None:
        items = [(r.claimed, result, r.log.drain()) for r, result in batch]
        try:
            accepted = self.leases.finish_claimed(items)
        except Exception:
            log.exception("could not record %d step result(s); the reaper will re-queue them", len(batch))
            accepted = [False] * len(batch)
        with self._running_lock:
            for r, _ in batch:
                if self._running.get(r.claimed.step_id) is r:
                    del self._running[r.claimed.step_id]
        for (r, result), ok in zip(batch, accepted, strict=True):
            step = r.claimed
            if r.late:
                log.warning(
                    "step %s attempt %s: late result %s", step.step_id, step.attempt, "accepted" if ok else "refused"
                )
                continue
            if not ok and r.handed_back:
                log.info("step %s attempt %s: stopped on shutdown; another worker runs it", step.step_id, step.attempt)
            elif not ok:
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
        # a settled step's last lines go with its result, in the writer's transaction
        logs = {r.claimed.step_id: r.log.drain() for r in running if not r.settled}
        asked = time.monotonic()
        lost = self.leases.heartbeat(pairs, logs)
        now = time.monotonic()
        with self._running_lock:
            for r in running:
                if r.claimed.step_id not in lost:
                    r.renewed_at = asked
            # a step that finished between our snapshot and the heartbeat is not lost, just done
            stopping = [r for r in running if r.claimed.step_id in lost and not r.settled]
        for r in stopping:
            log.warning("step %s: lease lost or deployment cancelled; stopping it", r.claimed.step_id)
            self._ask_to_stop(r, now)

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        wait = self.lease_seconds / 3
        while not stop.wait(wait):
            try:
                self.heartbeat_once()
                wait = self.lease_seconds / 3
            except Exception:
                log.exception("heartbeat failed; will retry")
                wait = min(self.lease_seconds / 3, 1.0)  # try again soon, and watch the leases run out
                self.stop_steps_losing_their_lease(time.monotonic())

    def stop_steps_losing_their_lease(self, now: float) -> list[int]:
        """When heartbeats cannot reach the database, stop the steps whose lease would run out before their
        processes could be killed: past the lease another worker may run them again, and two runs must
        never overlap. Returns the ids of the steps asked to stop."""
        latest = self.lease_seconds - min(KILL_GRACE + 1.0, self.lease_seconds / 3)
        with self._running_lock:
            losing = [r for r in self._running.values() if not r.settled and now - r.renewed_at >= latest]
        for r in losing:
            if r.stop_asked_at is None:
                log.warning(
                    "step %s: no heartbeat reached the database for %.1fs of its %.0fs lease; stopping it so a "
                    "retry elsewhere never overlaps it",
                    r.claimed.step_id,
                    now - r.renewed_at,
                    self.lease_seconds,
                )
            self._ask_to_stop(r, now)
        return [r.claimed.step_id for r in losing]

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
        """Idle, and still idle after a planner pass that ignores the change marker: a worker about to exit
        must not leave behind a promotion or start that a skipped pass would have made."""
        if not self.idle():
            return False
        self._settled_marker = -1
        if self.plan() or self._retry_soon:
            return False
        return self.idle()

    def wake(self) -> None:
        self._wake.set()

    def run_chore(self, name: str) -> None:
        """Run chore ``name`` at once (the webhook route: a delivery was recorded)."""
        self.chores.run_soon(name)

    def run(self, stop: threading.Event, *, exit_when_idle: bool = False) -> None:
        hb_stop = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat_loop, args=(hb_stop,), name="heartbeat", daemon=True)
        heartbeat.start()
        self._writer.start()
        # What exists before the loop (modules, config, plugins, compiled statements) lives as long as the
        # loop: frozen, the collector's full passes skip it. Those passes are triggered by the objects every
        # planner pass and step makes, and scanned all of that again each time (a tenth of a second, several
        # times a run of a thousand apps).
        gc.freeze()
        # A pass allocates rows and dicts by the ten thousand, nearly all freed by reference counting as it
        # ends; collecting the young generation every 700 allocations (the default) found little, promoted
        # the rest, and brought on full collections of 10-50 ms several times a run of a thousand apps.
        thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            self._start_sender()
            self.chores.start()
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
            gc.unfreeze()  # back to the collector, e.g. in a process that runs conductors one after another
            gc.set_threshold(*thresholds)
            self.chores.stop()
            self.shutdown()
            hb_stop.set()
            heartbeat.join(timeout=5)
            try:
                self.sender.stop(drain=5.0 if exit_when_idle and not stop.is_set() else 0.0)
            except Exception:
                log.exception("stopping the notification sender failed")

    def _start_sender(self) -> None:
        """Notifications are never worth a deploy: a sender that cannot start is logged, and steps go on."""
        try:
            self.sender.start()
        except Exception:
            log.exception("the notification sender could not start; deploying without notifications")

    def shutdown(self) -> None:
        """Stop claiming; let running steps finish within the grace period; hand back the rest."""
        self._stop_claiming.set()
        deadline = self.clock().timestamp() + self.grace_seconds
        while self.clock().timestamp() < deadline:
            with self._running_lock:
                if not self._running:
                    break
            self.enforce_deadlines()
            try:
                self.heartbeat_once()
            except Exception:  # the database is gone too: keep stopping what runs, within its lease
                log.exception("heartbeat failed while shutting down")
                self.stop_steps_losing_their_lease(time.monotonic())
            self._wake.wait(0.2)
            self._wake.clear()
        with self._running_lock:
            left = [r for r in self._running.values() if not r.settled]
        if left:
            log.warning("grace period over: handing %d running step(s) back to the queue", len(left))
            # Hand the steps back first, so the cancelled runs' own results are refused by the fencing.
            for r in left:
                r.handed_back = True
            try:
                self.leases.release((r.claimed.step_id, r.claimed.attempt) for r in left)
            except Exception:  # the database is gone: the leases run out and a reaper re-queues the steps
                log.exception("could not hand %d step(s) back; they are re-queued when their lease expires", len(left))
            now = time.monotonic()
            for r in left:
                self._ask_to_stop(r, now)
        wait_until = time.monotonic() + self.stop_grace
        for r in left:
            r.done.wait(max(0.0, wait_until - time.monotonic()))
        for r in left:
            self._abandon(r)  # those that have not returned yet
        self._results.put(None)  # after every step returned or was abandoned: every result is queued before it
        if self._writer.is_alive():
            self._writer.join(timeout=30)
        self._loop.stop()
