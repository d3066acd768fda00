"""The store's contract, run against every backend (SQLite and PostgreSQL subclass it).

It holds the invariants the engine relies on: lock names are exclusive, a claimed step belongs to one
attempt, late writes from a lost lease are refused, expired leases are re-queued as new attempts, and a
terminal deployment never changes state again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, update

from conveyor.cli.narrate import format_event
from conveyor.domain.decisions import Cancel, Decision, Fail, Note, Promote, Start, Succeed, Supersede, Verify
from conveyor.domain.model import DeploymentState, StepKind, StepState, Verdict
from conveyor.engine.controls import cancel
from conveyor.engine.deployments import create_deployment
from conveyor.engine.leases import MAX_ATTEMPTS, Leases, StepResult
from conveyor.engine.orchestrator import Orchestrator
from conveyor.store.database import Database
from conveyor.store.step_logs import LogChunk, LogFlush, read_step_log
from conveyor.store.tables import (
    Base,
    Deployment,
    Event,
    Hold,
    Lock,
    Placement,
    Release,
    Step,
    StepAttempt,
    StepDuration,
)
from conveyor.store.tables import Decision as DecisionRow


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class StoreContract:
    __test__ = False

    @pytest.fixture
    def store(self) -> Iterator[Database]:
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> Clock:
        return Clock()

    @pytest.fixture
    def set_based(self, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
        """The batch really went the set-based way: no fallback to one intent at a time."""
        with caplog.at_level(logging.DEBUG, logger="conveyor.engine.orchestrator"):
            yield
        assert not [r for r in caplog.get_records("call") if "one at a time" in r.getMessage()]

    def _release(self, db: Database, clock: Clock, app: str = "web", sha: str = "a" * 40) -> int:
        with db.write() as s:
            r = Release(app=app, sha=sha, label=sha[:7], ref="main", commits=[], created_at=clock(), created_by="t")
            s.add(r)
            s.flush()
            return r.id

    def _deployment(self, db: Database, clock: Clock, release_id: int, env: str = "integration") -> int:
        with db.write() as s:
            return create_deployment(
                s,
                release_id=release_id,
                app="web",
                environment=env,
                now=clock(),
                actor="t",
                origin_key=None,
                message="m",
            ).id

    def _steps_done(self, db: Database, *deployment_ids: int) -> None:
        """Their steps ran and succeeded (as a worker would record): a Succeed needs that."""
        with db.write() as s:
            s.execute(
                update(Step).where(Step.deployment_id.in_(deployment_ids)).values(state=StepState.SUCCEEDED.value)
            )

    def _state(self, db: Database, deployment_id: int) -> str:
        with db.read() as s:
            d = s.get(Deployment, deployment_id)
            assert d is not None
            return d.state

    def test_migrations_create_every_table(self, store: Database) -> None:
        names = set(inspect(store.engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= names

    def test_datetimes_round_trip_as_aware_utc(self, store: Database, clock: Clock) -> None:
        rid = self._release(store, clock)
        with store.read() as s:
            r = s.get(Release, rid)
            assert r is not None and r.created_at == clock() and r.created_at.tzinfo is not None

    def test_start_takes_locks_all_or_nothing(self, store: Database, clock: Clock) -> None:
        orch = Orchestrator(store, clock)
        rid = self._release(store, clock)
        first = self._deployment(store, clock, rid)
        second = self._deployment(store, clock, rid, env="integration")
        assert orch.apply(Start(None, deployment_id=first, locks=("app:web:integration", "group:g:integration")))
        assert not orch.apply(Start(None, deployment_id=second, locks=("app:other:integration", "group:g:integration")))
        with store.read() as s:
            locks = {lock.name: lock.deployment_id for lock in s.scalars(select(Lock))}
        assert locks == {"app:web:integration": first, "group:g:integration": first}
        assert self._state(store, second) == "pending"

    def test_terminal_state_never_changes(self, store: Database, clock: Clock) -> None:
        orch = Orchestrator(store, clock)
        rid = self._release(store, clock)
        did = self._deployment(store, clock, rid)
        assert orch.apply(Supersede(None, deployment_id=did, by_release_id=rid + 1))
        for intent in (
            Start(None, deployment_id=did, locks=("app:web:integration",)),
            Verify(None, deployment_id=did, checks=("health",)),
            Succeed(None, deployment_id=did),
            Fail(None, deployment_id=did, step_id=0, summary="x"),
        ):
            assert not orch.apply(intent)
        assert self._state(store, did) == "superseded"

    def test_success_releases_locks_and_failure_blocks(self, store: Database, clock: Clock) -> None:
        orch = Orchestrator(store, clock)
        bad = self._release(store, clock, sha="b" * 40)
        good = self._release(store, clock, sha="c" * 40)
        d1 = self._deployment(store, clock, bad)
        assert orch.apply(Start(None, deployment_id=d1, locks=("app:web:integration",)))
        assert orch.apply(Fail(None, deployment_id=d1, step_id=1, summary="release bbbbbbb failed deploy"))
        with store.read() as s:
            holds = list(s.scalars(select(Hold)))
            assert [(h.kind, h.app, h.environment, h.lifted_at) for h in holds] == [
                ("block", "web", "integration", None)
            ]
            assert not list(s.scalars(select(Lock)))
        d2 = self._deployment(store, clock, good)
        assert orch.apply(Start(None, deployment_id=d2, locks=("app:web:integration",)))
        self._steps_done(store, d2)
        assert orch.apply(Succeed(None, deployment_id=d2))
        with store.read() as s:
            hold = s.scalars(select(Hold)).one()
            assert hold.lifted_at is not None and "fixed forward" in (hold.lift_reason or "")
            kinds = [e.kind for e in s.scalars(select(Event).order_by(Event.id))]
        assert kinds.count("hold.created") == 1 and kinds.count("hold.lifted") == 1
        assert "deployment.failed" in kinds and "deployment.succeeded" in kinds

    def test_promotion_is_idempotent(self, store: Database, clock: Clock) -> None:
        orch = Orchestrator(store, clock)
        rid = self._release(store, clock)
        promote = Promote(None, app="web", release_id=rid, environment="staging", origin_key=f"auto:{rid}:staging")
        assert orch.apply(promote)
        assert not orch.apply(promote)
        with store.read() as s:
            assert len(list(s.scalars(select(Deployment)))) == 1

    def test_a_batch_of_starts_grants_a_shared_lock_once(self, store: Database, clock: Clock, set_based: None) -> None:
        orch = Orchestrator(store, clock)
        rid = self._release(store, clock)
        first, second, third = (self._deployment(store, clock, rid, env=env) for env in ("a", "b", "c"))
        results = orch.apply_all(
            [
                Start(None, deployment_id=first, locks=("app:web:a", "group:g:x")),
                Start(None, deployment_id=second, locks=("app:web:b", "group:g:x")),  # same group lock
                Start(None, deployment_id=third, locks=("app:web:c",)),
            ]
        )
        assert results == [True, False, True]
        assert [self._state(store, d) for d in (first, second, third)] == ["deploying", "pending", "deploying"]
        with store.read() as s:
            assert {lock.name: lock.deployment_id for lock in s.scalars(select(Lock))} == {
                "app:web:a": first,
                "group:g:x": first,
                "app:web:c": third,
            }
            kinds = [e.kind for e in s.scalars(select(Event).where(Event.kind == "deployment.started"))]
            steps = list(s.scalars(select(Step)))
        assert len(kinds) == 2 and sorted(st.deployment_id for st in steps) == [first, third]

    def test_a_batch_of_successes_lifts_the_blocks_they_fix(
        self, store: Database, clock: Clock, set_based: None
    ) -> None:
        orch = Orchestrator(store, clock)
        bad = self._release(store, clock, sha="b" * 40)
        good = self._release(store, clock, sha="c" * 40)
        failing = self._deployment(store, clock, bad)
        assert orch.apply(Start(None, deployment_id=failing, locks=("app:web:integration",)))
        assert orch.apply(Fail(None, deployment_id=failing, step_id=1, summary="release bbbbbbb failed"))
        fixes = [self._deployment(store, clock, good), self._deployment(store, clock, good, env="staging")]
        assert orch.apply_all([Start(None, deployment_id=d, locks=(f"app:web:{d}",)) for d in fixes]) == [True, True]
        self._steps_done(store, *fixes)
        assert orch.apply_all([Succeed(None, deployment_id=d) for d in [*fixes, failing]]) == [True, True, False]
        assert [self._state(store, d) for d in fixes] == ["succeeded", "succeeded"]
        with store.read() as s:
            hold = s.scalars(select(Hold)).one()
            assert hold.lifted_at is not None and hold.lift_reason == "fixed forward: ccccccc passed integration"
            assert not list(s.scalars(select(Lock)))
            assert {d.summary for d in s.scalars(select(Deployment).where(Deployment.id.in_(fixes)))} == {
                "ccccccc is live in integration",
                "ccccccc is live in staging",
            }

    def test_a_batch_of_promotions_creates_each_once(self, store: Database, clock: Clock, set_based: None) -> None:
        orch = Orchestrator(store, clock)
        rid = self._release(store, clock)
        promotions = [
            Promote(None, app="web", release_id=rid, environment=env, origin_key=f"auto:{rid}:{env}")
            for env in ("staging", "production", "staging")
        ]
        assert orch.apply_all(promotions) == [True, True, False]
        assert orch.apply_all(promotions[:2]) == [False, False]
        with store.read() as s:
            assert sorted(d.environment for d in s.scalars(select(Deployment))) == ["production", "staging"]
            assert len(list(s.scalars(select(Event).where(Event.kind == "deployment.created")))) == 2

    def test_a_pass_succeeds_promotes_and_hands_the_lock_on_in_order(
        self, store: Database, clock: Clock, set_based: None
    ) -> None:
        """What one planner pass asks when a deployment finishes: its success, its promotion and the start
        of the next waiter for its lock are applied together, in that order."""
        orch = Orchestrator(store, clock)
        rid = self._release(store, clock)
        finished, waiter = self._deployment(store, clock, rid), self._deployment(store, clock, rid, env="other")
        assert orch.apply(Start(None, deployment_id=finished, locks=("group:g:x",)))
        self._steps_done(store, finished)
        promote = Promote(
            None, app="web", release_id=rid, environment="staging", origin_key="a", from_deployment_id=finished
        )
        pass_ = [
            Succeed(None, deployment_id=finished),
            promote,
            Start(None, deployment_id=waiter, locks=("group:g:x",)),
        ]
        assert orch.apply_all(pass_) == [True, True, True]
        with store.read() as s:
            assert {lock.name: lock.deployment_id for lock in s.scalars(select(Lock))} == {"group:g:x": waiter}

    def test_a_promotion_from_a_success_that_was_not_written_is_refused(
        self, store: Database, clock: Clock, set_based: None
    ) -> None:
        orch = Orchestrator(store, clock)
        rid = self._release(store, clock)
        never_started = self._deployment(store, clock, rid)
        promotions = [
            Promote(None, app="web", release_id=rid, environment=env, origin_key=env, from_deployment_id=never_started)
            for env in ("staging", "production")
        ]
        assert orch.apply_all([Succeed(None, deployment_id=never_started), *promotions]) == [False, False, False]
        assert not orch.apply(promotions[0])  # one at a time too
        with store.read() as s:
            assert [d.id for d in s.scalars(select(Deployment))] == [never_started]

    def test_decisions_are_recorded_only_when_they_change(self, store: Database, clock: Clock, set_based: None) -> None:
        orch = Orchestrator(store, clock)
        rid = self._release(store, clock)
        did = self._deployment(store, clock, rid, env="staging")
        waiting = Decision("web", "staging", Verdict.WAIT, "WaitForLock", "waiting for lock x", deployment_id=did)
        other = Decision("web", "staging", Verdict.WAIT, "WaitForLock", "waiting for lock y", deployment_id=did)
        assert orch.apply(Note(waiting))
        assert not orch.apply(Note(waiting))
        assert orch.apply_all([Note(other), Note(other), Note(waiting)]) == [True, False, True]
        manual = Decision("web", "production", Verdict.WAIT, "ManualTierWaitsForPromotion", "promote by hand")
        assert orch.apply_all([Note(manual), Note(manual)]) == [True, False]
        assert not orch.apply(Note(manual))
        with store.read() as s:
            summaries = [d.summary for d in s.scalars(select(DecisionRow).order_by(DecisionRow.id))]
            waits = list(s.scalars(select(Event).where(Event.kind == "promotion.waiting")))
        assert summaries == ["waiting for lock x", "waiting for lock y", "waiting for lock x", "promote by hand"]
        assert [(e.app, e.environment, e.message) for e in waits] == [("web", "production", "promote by hand")]

    def _started_step(self, store: Database, clock: Clock) -> int:
        with store.read() as s:
            n = len(list(s.scalars(select(Release.id))))
        rid = self._release(store, clock, sha=f"{n:040x}")
        did = self._deployment(store, clock, rid)
        assert Orchestrator(store, clock).apply(Start(None, deployment_id=did, locks=(f"app:web:integration:{n}",)))
        return did

    def test_claim_gives_each_step_to_one_worker(self, store: Database, clock: Clock) -> None:
        for _ in range(6):
            self._started_step(store, clock)
        claimed: list[int] = []
        guard = threading.Lock()

        def grab(owner: str) -> None:
            got = Leases(store, clock, owner, 10).claim(2)
            with guard:
                claimed.extend(c.step_id for c in got)

        threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(claimed) == 6 and len(set(claimed)) == 6

    def test_lost_lease_is_fenced_and_reaped_as_new_attempt(self, store: Database, clock: Clock) -> None:
        self._started_step(store, clock)
        slow = Leases(store, clock, "slow", 10)
        fast = Leases(store, clock, "fast", 10)
        (first,) = slow.claim(5)
        assert first.kind == StepKind.DEPLOY and first.attempt == 1
        clock.advance(11)
        assert fast.reap() == 1
        (second,) = fast.claim(5)
        assert second.step_id == first.step_id and second.attempt == 2
        # the paused worker wakes up: its heartbeat and its result are refused, though what its run printed
        # is kept under its own attempt (it did run)
        late, ok = LogFlush([LogChunk(0, 0, "late\n")]), LogFlush([LogChunk(0, 0, "ok\n")])
        last = LogFlush([LogChunk(1, 5, "last\n")])
        assert slow.heartbeat([(first.step_id, first.attempt)], {first.step_id: late}) == {first.step_id}
        assert not slow.finish(first, StepResult(True, "late", [], {}), last)
        assert fast.finish(second, StepResult(True, "deployed", [], {}), ok)
        with store.read() as s:
            step = s.get(Step, first.step_id)
            assert step is not None and step.state == StepState.SUCCEEDED
            assert read_step_log(s, first.step_id).endswith("late\nlast\nok\n"), read_step_log(s, first.step_id)
            attempts = [
                (a.attempt, a.owner, a.outcome) for a in s.scalars(select(StepAttempt).order_by(StepAttempt.id))
            ]
        assert attempts == [(1, "slow", "expired"), (2, "fast", "succeeded")]

    def test_a_batch_stores_one_result_per_attempt(self, store: Database, clock: Clock) -> None:
        """An abandoned run's own result can land in the same batch right behind the verdict recorded for
        it: the first is stored, the second refused, and a result of the attempt that holds the lease is
        still stored behind a stale one of the same step."""
        self._started_step(store, clock)
        self._started_step(store, clock)
        slow, fast = Leases(store, clock, "slow", 10), Leases(store, clock, "fast", 10)
        verdict = StepResult(False, "timed out after 1s (step_timeout); abandoned", [], {"timed_out": True})
        late = StepResult(False, "deploy ended without a result", [], {})
        (abandoned,) = slow.claim(1)
        clock.advance(11)
        assert fast.reap() == 1
        claimed = {c.step_id: c for c in fast.claim(2)}
        retried = claimed.pop(abandoned.step_id)
        (other,) = claimed.values()
        assert retried.attempt == 2
        items = [
            (other, verdict, LogFlush()),
            (other, late, LogFlush()),
            (abandoned, late, LogFlush()),
            (retried, StepResult(True, "deployed", [], {}), LogFlush()),
        ]
        assert fast.finish_claimed(items) == [True, False, False, True]
        with store.read() as s:
            outcomes = {s.get_one(Step, c.step_id).id: s.get_one(Step, c.step_id).outcome for c in (other, retried)}
            finished = s.scalars(select(Event).where(Event.kind == "step.finished")).all()
        assert outcomes == {other.step_id: verdict.outcome, retried.step_id: "deployed"}
        assert len(finished) == 2

    def test_step_given_up_after_max_attempts(self, store: Database, clock: Clock) -> None:
        did = self._started_step(store, clock)
        leases = Leases(store, clock, "w", 1)
        for _ in range(MAX_ATTEMPTS):
            assert leases.claim(1)
            clock.advance(2)
            leases.reap()
        assert leases.claim(1) == []
        with store.read() as s:
            step = s.scalars(select(Step).where(Step.deployment_id == did)).one()
            assert step.state == StepState.FAILED and f"gave up after {MAX_ATTEMPTS} attempts" in step.outcome
            counted = s.scalars(select(StepDuration)).one()  # a step given up still took its time
            assert (counted.kind, counted.steps, counted.seconds) == ("deploy", 1, 2.0 * MAX_ATTEMPTS)

    def test_release_hands_steps_back(self, store: Database, clock: Clock) -> None:
        self._started_step(store, clock)
        leases = Leases(store, clock, "w", 10)
        (c,) = leases.claim(1)
        leases.release([(c.step_id, c.attempt)])
        (again,) = Leases(store, clock, "other", 10).claim(1)
        assert again.step_id == c.step_id and again.attempt == 2

    def test_released_and_requeued_steps_name_their_app_and_environment(self, store: Database, clock: Clock) -> None:
        self._started_step(store, clock)
        worker = Leases(store, clock, "w", 10)
        (c,) = worker.claim(1)
        worker.release([(c.step_id, c.attempt)])
        assert worker.claim(1)
        clock.advance(11)
        assert Leases(store, clock, "reaper", 10).reap() == 1
        with store.read() as s:
            kinds = ["step.released", "step.requeued"]
            events = {e.kind: e for e in s.scalars(select(Event).where(Event.kind.in_(kinds)))}
        assert {k: (e.app, e.environment) for k, e in events.items()} == dict.fromkeys(kinds, ("web", "integration"))
        assert events["step.requeued"].message == "lease of w expired; the deploy step will run again"
        assert "web → integration" in format_event(events["step.released"]).plain

    def test_deployment_states_are_known(self, store: Database, clock: Clock) -> None:
        did = self._started_step(store, clock)
        assert DeploymentState(self._state(store, did)) == DeploymentState.DEPLOYING

    # -- what runs where, succeed's precondition, cancel ------------------------------------------------

    def _placement(self, db: Database, app: str = "web", env: str = "integration") -> tuple[object, ...] | None:
        with db.read() as s:
            p = s.get(Placement, (app, env))
            if p is None:
                return None
            return (p.release_id, p.deployment_id, p.health, p.good_release_id)

    def _through_checks(self, orch: Orchestrator, db: Database, did: int, *, passed: bool) -> None:
        """Start ``did``, its deploy step succeeds, one check runs and passes or fails; then the outcome."""
        assert orch.apply(Start(None, deployment_id=did, locks=(f"app:web:integration:{did}",)))
        self._steps_done(db, did)
        assert orch.apply(Verify(None, deployment_id=did, checks=("smoke",)))
        with db.write() as s:
            check = s.scalars(select(Step).where(Step.deployment_id == did, Step.kind == "check")).one()
            check.state = (StepState.SUCCEEDED if passed else StepState.FAILED).value
            check_id = check.id
        if passed:
            assert orch.apply(Succeed(None, deployment_id=did, from_state=DeploymentState.VERIFYING))
        else:
            assert orch.apply(Fail(None, deployment_id=did, step_id=check_id, summary="smoke failed"))

    def test_placement_follows_what_runs(self, store: Database, clock: Clock) -> None:
        orch = Orchestrator(store, clock)
        v1, v2 = self._release(store, clock, sha="1" * 40), self._release(store, clock, sha="2" * 40)
        first = self._deployment(store, clock, v1)
        self._through_checks(orch, store, first, passed=True)
        assert self._placement(store) == (v1, first, "healthy", v1)
        second = self._deployment(store, clock, v2)
        assert orch.apply(Start(None, deployment_id=second, locks=("app:web:integration:x",)))
        self._steps_done(store, second)
        assert orch.apply(Verify(None, deployment_id=second, checks=("smoke",)))
        assert self._placement(store) == (v2, second, "checking", v1)  # it runs: its deploy step succeeded
        with store.write() as s:
            s.execute(update(Step).where(Step.deployment_id == second, Step.kind == "check").values(state="failed"))
        assert orch.apply(Fail(None, deployment_id=second, step_id=0, summary="smoke failed"))
        assert self._placement(store) == (v2, second, "failing", v1)  # still what runs, failing
        back = self._deployment(store, clock, v1)  # an older release deployed again by hand moves it back
        self._through_checks(orch, store, back, passed=True)
        assert self._placement(store) == (v1, back, "healthy", v1)

    def test_a_failed_deploy_step_leaves_the_placement_alone(self, store: Database, clock: Clock) -> None:
        orch = Orchestrator(store, clock)
        v1, v2 = self._release(store, clock, sha="1" * 40), self._release(store, clock, sha="2" * 40)
        first = self._deployment(store, clock, v1)
        self._through_checks(orch, store, first, passed=True)
        second = self._deployment(store, clock, v2)
        assert orch.apply(Start(None, deployment_id=second, locks=("app:web:integration:x",)))
        assert orch.apply(Fail(None, deployment_id=second, step_id=0, summary="deploy failed"))
        assert self._placement(store) == (v1, first, "healthy", v1)

    @pytest.mark.parametrize(
        ("from_state", "steps_done", "ok"),
        [
            (DeploymentState.DEPLOYING, True, True),
            (DeploymentState.DEPLOYING, False, False),  # its deploy step has not even run
            (DeploymentState.VERIFYING, True, False),  # planned from verifying, still deploying: refused
        ],
    )
    def test_succeed_only_from_the_state_it_was_planned_in(
        self, store: Database, clock: Clock, from_state: DeploymentState, steps_done: bool, ok: bool
    ) -> None:
        orch = Orchestrator(store, clock)
        did = self._deployment(store, clock, self._release(store, clock))
        assert orch.apply(Start(None, deployment_id=did, locks=("app:web:integration",)))
        if steps_done:
            self._steps_done(store, did)
        assert orch.apply(Succeed(None, deployment_id=did, from_state=from_state)) == ok
        assert self._state(store, did) == ("succeeded" if ok else "deploying")
        assert bool(self._placement(store)) == ok

    def test_cancel_ends_a_waiting_deployment_at_once_and_a_running_one_once_its_step_stops(
        self, store: Database, clock: Clock
    ) -> None:
        orch = Orchestrator(store, clock)
        rid = self._release(store, clock)
        running, waiting = self._deployment(store, clock, rid), self._deployment(store, clock, rid, env="staging")
        assert orch.apply(Start(None, deployment_id=running, locks=("group:g:x",)))
        leases = Leases(store, clock, "holder", 30)
        (claimed,) = leases.claim(1)
        with store.write() as s:
            rows = list(s.scalars(select(Deployment).where(Deployment.id.in_([running, waiting]))))
            cancel(s, rows, actor="cli:an-operator", reason="wrong version", now=clock())
        assert self._state(store, waiting) == "cancelled"
        assert self._state(store, running) == "deploying"  # its step still runs: the lock stays held
        assert not orch.apply(Cancel(None, deployment_id=running))
        # the holder's heartbeat learns of it (and keeps the lease meanwhile), the driver stops, the result
        # is recorded as cancelled
        assert leases.heartbeat([(claimed.step_id, claimed.attempt)], {}) == {claimed.step_id}
        assert leases.finish(claimed, StepResult(False, "cancelled", [], {}), "")
        assert orch.apply(Cancel(None, deployment_id=running))
        assert self._state(store, running) == "cancelled"
        with store.read() as s:
            step = s.get(Step, claimed.step_id)
            assert step is not None and step.state == StepState.CANCELLED
            assert not list(s.scalars(select(Lock)))
            kinds = [e.kind for e in s.scalars(select(Event).order_by(Event.id))]
            rules = [d.rule for d in s.scalars(select(DecisionRow))]
        assert kinds.count("deployment.cancelled") == 2 and "cancel.requested" in kinds
        assert rules == ["CancelledByOperator", "CancelledByOperator"]

    def test_the_reaper_finishes_the_cancel_of_a_dead_holder(self, store: Database, clock: Clock) -> None:
        did = self._started_step(store, clock)
        (claimed,) = Leases(store, clock, "dead", 1).claim(1)
        with store.write() as s:
            cancel(s, [s.get(Deployment, did)], actor="cli:an-operator", reason="stop", now=clock())  # type: ignore[list-item]
        clock.advance(5)
        assert Leases(store, clock, "reaper", 10).reap() == 1
        with store.read() as s:
            step = s.get(Step, claimed.step_id)
            assert step is not None and step.state == StepState.CANCELLED
        assert Leases(store, clock, "other", 10).claim(1) == []  # never re-queued
        assert Orchestrator(store, clock).apply(Cancel(None, deployment_id=did))
        assert self._state(store, did) == "cancelled"

    def test_steps_of_a_deployment_being_cancelled_are_not_claimed(self, store: Database, clock: Clock) -> None:
        """A check queued by a plan made just before the cancel is never started: the orchestrator ends it."""
        did = self._started_step(store, clock)
        leases = Leases(store, clock, "w", 10)
        (deploy,) = leases.claim(1)
        with store.write() as s:
            cancel(s, [s.get(Deployment, did)], actor="cli:an-operator", reason="stop", now=clock())  # type: ignore[list-item]
            s.add(Step(deployment_id=did, kind="check", name="smoke", state="queued", due_at=clock()))
        assert leases.claim(5) == []
        assert leases.finish(deploy, StepResult(False, "cancelled", [], {}), "")
