"""``plan_next``: the rules composed into one pass, and the scheduling of not-started deployments.

Locks are granted in arrival order: a waiter reserves every lock it needs, so a later arrival never
overtakes it, while deployments needing other locks start at once. Decisions are recorded only when
they change, so a deployment that keeps waiting for the same reason produces nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from conveyor.domain.decisions import Decision, Intent, Note, Promote, Start, Wait
from conveyor.domain.model import DeploymentState, Verdict
from conveyor.domain.planner import Plan, plan_next
from conveyor.domain.snapshot import Snapshot
from tests.unit.planner_builders import (
    DEPLOYING,
    FAILED,
    NOW,
    PASSED,
    PENDING,
    VERIFYING,
    WAITING,
    app,
    block,
    brief,
    check,
    dep,
    deploy_step,
    done,
    freeze,
    locks_held,
    snap,
)


def briefs(s: Snapshot) -> list[tuple[object, ...] | None]:
    return [brief(i) for i in plan_next(s, NOW).intents]


def only(plan: Plan, kind: type[Intent], deployment_id: int | None = None) -> Intent:
    found = [
        i
        for i in plan.intents
        if isinstance(i, kind) and (deployment_id is None or getattr(i, "deployment_id", None) == deployment_id)
    ]
    assert len(found) == 1, plan.intents
    return found[0]


def decision_of(intent: Intent) -> Decision:
    assert intent.decision is not None
    return intent.decision


# api and web share the "payments" group; docs stands alone.
API, WEB, DOCS = app("api", groups=["payments"]), app("web", groups=["payments"]), app("docs")


# -- locks and arrival order -------------------------------------------------------------------------


@pytest.mark.parametrize("listed", ["in arrival order", "reversed"])
def test_shared_group_lock_goes_to_the_earlier_arrival(listed: str) -> None:
    first = dep(1, "api", "staging", 5, PENDING, queued_at_offset=-10)
    second = dep(2, "web", "staging", 8, PENDING, queued_at_offset=-5)
    deployments = [first, second] if listed == "in arrival order" else [second, first]
    plan = plan_next(snap(apps=[API, WEB], deployments=deployments), NOW)

    start = only(plan, Start)
    assert isinstance(start, Start)
    assert start.deployment_id == 1
    assert start.locks == ("app:api:staging", "group:payments:staging")
    assert decision_of(start).rule == "StartWhenLocksFree"

    wait = only(plan, Wait)
    assert isinstance(wait, Wait)
    assert wait.deployment_id == 2
    decision = decision_of(wait)
    assert (decision.verdict, decision.rule) == (Verdict.WAIT, "WaitInArrivalOrder")
    assert decision.evidence == {"lock": "group:payments:staging", "ahead_deployment": 1}
    assert "#1" in decision.summary


def test_same_arrival_time_goes_by_id() -> None:
    later_id = dep(7, "api", "staging", 5, PENDING, queued_at_offset=-5)
    earlier_id = dep(3, "web", "staging", 8, PENDING, queued_at_offset=-5)
    s = snap(apps=[API, WEB], deployments=[later_id, earlier_id])
    assert briefs(s) == [("Start", 3), ("Wait", 7, "WaitInArrivalOrder")]


def test_a_group_lock_is_per_environment() -> None:
    s = snap(
        apps=[API, WEB],
        deployments=[dep(1, "api", "staging", 5, queued_at_offset=-10), dep(2, "web", "production", 8)],
    )
    assert briefs(s) == [("Start", 1), ("Start", 2)]


def test_a_lock_held_by_an_active_deployment() -> None:
    holder = dep(3, "api", "staging", 5, DEPLOYING, queued_at_offset=-30)
    waiter = dep(4, "web", "staging", 8, PENDING, queued_at_offset=-5)
    plan = plan_next(snap(apps=[API, WEB], deployments=[holder, waiter], locks=locks_held(holder, API)), NOW)

    wait = only(plan, Wait)
    decision = decision_of(wait)
    assert (decision.verdict, decision.rule) == (Verdict.WAIT, "WaitForLock")
    assert decision.evidence == {"lock": "group:payments:staging", "holder_deployment": 3}
    assert decision.summary == ("waiting for lock group:payments:staging, held by deployment #3 (api v5, deploying)")


def test_a_lock_held_by_a_deployment_no_longer_open_still_names_it() -> None:
    waiter = dep(4, "web", "staging", 8, PENDING)
    plan = plan_next(snap(apps=[API, WEB], deployments=[waiter], locks={"group:payments:staging": 99}), NOW)
    assert decision_of(only(plan, Wait)).summary.endswith("held by deployment #99")


def test_a_lock_already_held_by_the_deployment_itself_does_not_stop_it() -> None:
    d = dep(4, "web", "staging", 8, WAITING)
    assert briefs(snap(apps=[WEB], deployments=[d], locks={"app:web:staging": 4})) == [("Start", 4)]


def test_fifo_a_later_arrival_never_overtakes_a_waiter() -> None:
    """The earliest waiter needs payments and ledger; payments is busy. A later arrival needing only
    ledger (free right now) must not take it, or the earliest could starve; an unrelated app goes ahead."""
    busy = dep(9, "billing", "staging", 3, VERIFYING, queued_at_offset=-60)
    earliest = dep(1, "api", "staging", 5, WAITING, queued_at_offset=-30)
    later = dep(2, "web", "staging", 8, PENDING, queued_at_offset=-20)
    unrelated = dep(3, "docs", "staging", 2, PENDING, queued_at_offset=-10)
    billing = app("billing", groups=["payments"])
    s = snap(
        apps=[billing, app("api", groups=["payments", "ledger"]), app("web", groups=["ledger"]), DOCS],
        deployments=[busy, earliest, later, unrelated],
        locks=locks_held(busy, billing),
    )
    plan = plan_next(s, NOW)
    assert [brief(i) for i in plan.intents] == [
        ("Note", "api", "staging", "WaitForLock"),
        ("Wait", 2, "WaitInArrivalOrder"),
        ("Start", 3),
    ]
    assert decision_of(plan.intents[1]).evidence == {"lock": "group:ledger:staging", "ahead_deployment": 1}


def test_independent_apps_all_start_in_one_pass() -> None:
    names = ["api", "web", "docs", "search", "mail"]
    deployments = [dep(i, name, "integration", 10 + i, queued_at_offset=i) for i, name in enumerate(names, 1)]
    plan = plan_next(snap(deployments=deployments), NOW)
    assert [brief(i) for i in plan.intents] == [("Start", i) for i in range(1, 6)]
    assert [i.locks for i in plan.intents if isinstance(i, Start)] == [(f"app:{n}:integration",) for n in names]


def test_a_held_deployment_does_not_reserve_its_locks() -> None:
    blocked = dep(1, "api", "production", 5, PENDING, queued_at_offset=-10)
    later = dep(2, "web", "production", 8, PENDING, queued_at_offset=-5)
    s = snap(apps=[API, WEB], deployments=[blocked, later], holds=[block("api", "staging", 5)])
    assert briefs(s) == [("Wait", 1, "HoldWhileBlocked"), ("Start", 2)]


def test_a_superseded_deployment_does_not_reserve_its_locks() -> None:
    older = dep(1, "api", "staging", 5, WAITING, queued_at_offset=-10)
    other = dep(2, "web", "staging", 8, PENDING, queued_at_offset=-7)
    newer = dep(3, "api", "staging", 6, PENDING, queued_at_offset=-5)
    s = snap(apps=[API, WEB], deployments=[older, other, newer])
    assert briefs(s) == [("Supersede", 1, 6), ("Start", 2), ("Wait", 3, "WaitInArrivalOrder")]


# -- supersede and holds in the pass ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("older_state", "expected"),
    [
        pytest.param(PENDING, [("Supersede", 1, 6), ("Start", 2)], id="older not started: superseded"),
        pytest.param(WAITING, [("Supersede", 1, 6), ("Start", 2)], id="older waiting: superseded"),
        pytest.param(DEPLOYING, [("Wait", 2, "WaitForLock")], id="older already deploying: the newer waits"),
    ],
)
def test_newer_release_and_older_one_in_the_same_place(older_state: DeploymentState, expected: list[object]) -> None:
    older = dep(1, "api", "staging", 5, older_state, queued_at_offset=-10)
    newer = dep(2, "api", "staging", 6, PENDING, queued_at_offset=-5)
    locks = locks_held(older) if older.state.active else {}
    assert briefs(snap(deployments=[older, newer], locks=locks)) == expected


def test_fix_forward_starts_despite_the_block() -> None:
    fix = dep(1, "api", "staging", 6, WAITING)
    assert briefs(snap(deployments=[fix], holds=[block("api", "staging", 5)])) == [("Start", 1)]


def test_a_freeze_holds_a_pending_deployment() -> None:
    plan = plan_next(snap(deployments=[dep(1, "api", "production", 6)], holds=[freeze(env="production")]), NOW)
    assert [brief(i) for i in plan.intents] == [("Wait", 1, "HoldWhileFrozen")]
    assert decision_of(plan.intents[0]).verdict == Verdict.HOLD


def test_deployments_of_apps_or_environments_no_longer_configured_are_left_alone() -> None:
    s = snap(
        apps=[app("api")],
        deployments=[dep(1, "gone", "staging", 5), dep(2, "api", "qa", 5)],
    )
    assert plan_next(s, NOW).intents == []


# -- decisions recorded only when they change -------------------------------------------------------


def held_in_production(state: DeploymentState, fingerprints: dict[tuple[str, str], str] | None = None) -> Snapshot:
    d = dep(1, "api", "production", 6, state)
    return snap(deployments=[d], holds=[freeze(env="production")], fingerprints=fingerprints)


def hold_fingerprint() -> str:
    return decision_of(plan_next(held_in_production(PENDING), NOW).intents[0]).fingerprint


def test_pending_always_moves_to_waiting_whatever_was_recorded() -> None:
    s = held_in_production(PENDING, {("api", "production"): hold_fingerprint()})
    assert briefs(s) == [("Wait", 1, "HoldWhileFrozen")]


def test_waiting_for_the_same_reason_says_nothing() -> None:
    s = held_in_production(WAITING, {("api", "production"): hold_fingerprint()})
    assert plan_next(s, NOW).intents == []


@pytest.mark.parametrize(
    "recorded",
    [
        pytest.param({}, id="nothing recorded yet"),
        pytest.param({("api", "production"): "0" * 32}, id="other"),
    ],
)
def test_waiting_for_a_new_reason_is_noted(recorded: dict[tuple[str, str], str]) -> None:
    plan = plan_next(held_in_production(WAITING, recorded), NOW)
    assert [brief(i) for i in plan.intents] == [("Note", "api", "production", "HoldWhileFrozen")]
    assert not plan.changes_state


def test_a_waiting_deployment_whose_lock_holder_moves_on_is_noted_again() -> None:
    def waiting(holder_state: DeploymentState, fingerprints: dict[tuple[str, str], str]) -> Plan:
        holder = dep(3, "api", "staging", 5, holder_state, queued_at_offset=-30)
        waiter = dep(4, "web", "staging", 8, WAITING)
        s = snap(
            apps=[API, WEB],
            deployments=[holder, waiter],
            locks=locks_held(holder, API),
            fingerprints=fingerprints,
        )
        return plan_next(s, NOW)

    first = decision_of(only(waiting(DEPLOYING, {}), Note))
    assert waiting(DEPLOYING, {("web", "staging"): first.fingerprint}).intents == []
    assert only(waiting(VERIFYING, {("web", "staging"): first.fingerprint}), Note) is not None


MANUAL = app("api", tier="manual", reason="handles payments")


def manual_waiting(fingerprints: dict[tuple[str, str], str]) -> Snapshot:
    return snap(apps=[MANUAL], succeeded={("api", "staging"): 5}, fingerprints=fingerprints)


def test_manual_tier_note_is_emitted_while_new() -> None:
    plan = plan_next(manual_waiting({}), NOW)
    assert [brief(i) for i in plan.intents] == [("Note", "api", "production", "ManualTierWaitsForPromotion")]
    assert not plan.changes_state


def test_manual_tier_note_already_recorded_is_dropped() -> None:
    fingerprint = decision_of(plan_next(manual_waiting({}), NOW).intents[0]).fingerprint
    assert plan_next(manual_waiting({("api", "production"): fingerprint}), NOW).intents == []


def record(plan: Plan, recorded: dict[tuple[str, str, int | None], str]) -> int:
    """Store the plan's decisions as the store does: only when they differ from the latest for the same
    (app, environment, deployment)."""
    stored = 0
    for intent in plan.intents:
        d = intent.decision
        if d is not None and recorded.get((d.app, d.environment, d.deployment_id)) != d.fingerprint:
            recorded[(d.app, d.environment, d.deployment_id)] = d.fingerprint
            stored += 1
    return stored


def _manual_release_waits_while_an_older_one_is_frozen() -> Snapshot:
    # an operator promoted v5 to production, where a freeze holds it; meanwhile v6 passed staging
    return snap(
        apps=[MANUAL],
        deployments=[dep(1, "api", "production", 5, WAITING)],
        holds=[freeze(env="production")],
        succeeded={("api", "staging"): 6, ("api", "production"): 4},
    )


def _same_release_queued_twice_behind_a_freeze() -> Snapshot:
    return snap(
        deployments=[
            dep(1, "api", "production", 5, WAITING, -10),
            dep(2, "api", "production", 5, WAITING, -5),
        ],
        holds=[freeze(env="production")],
    )


@pytest.mark.parametrize(
    "situation",
    [
        pytest.param(_manual_release_waits_while_an_older_one_is_frozen, id="manual note and a frozen waiter"),
        pytest.param(_same_release_queued_twice_behind_a_freeze, id="two waiters in one place"),
    ],
)
def test_unchanged_situation_settles_after_one_pass(situation: Callable[[], Snapshot]) -> None:
    base = situation()
    recorded: dict[tuple[str, str, int | None], str] = {}
    record(plan_next(base, NOW), recorded)
    later = []
    for _ in range(5):
        s = replace(base, decision_fingerprints=frozenset(recorded.values()))
        later.append(record(plan_next(s, NOW), recorded))
    assert later == [0] * 5


# -- composition and Plan ---------------------------------------------------------------------------


def test_one_pass_advances_then_promotes_then_schedules() -> None:
    """The success planned in this pass is promoted in the same pass, after it."""
    verifying = dep(1, "api", "staging", 5, VERIFYING, -30, steps=[deploy_step(PASSED), check("smoke", PASSED, id=21)])
    pending = dep(2, "web", "integration", 8, PENDING, -5)
    s = snap(
        apps=[app("api", checks={"staging": ("smoke",)}), app("web"), app("docs")],
        deployments=[pending, verifying],
        succeeded={("docs", "integration"): 3},
        locks=locks_held(verifying),
    )
    assert briefs(s) == [
        ("Succeed", 1),
        ("Promote", 5, "production", "auto:5:production"),
        ("Promote", 3, "staging", "auto:3:staging"),
        ("Start", 2),
    ]


def test_a_promotion_names_the_success_it_follows() -> None:
    done_now = dep(1, "api", "staging", 5, DEPLOYING, steps=[deploy_step(PASSED)])
    s = snap(apps=[app("api"), DOCS], deployments=[done_now], succeeded={("docs", "integration"): done(3, 7)})
    promotions = {i.app: i.from_deployment_id for i in plan_next(s, NOW).intents if isinstance(i, Promote)}
    assert promotions == {"api": 1, "docs": 7}


def test_a_lock_freed_by_a_success_goes_to_its_next_waiter_in_the_same_pass() -> None:
    holder = dep(3, "api", "staging", 5, DEPLOYING, queued_at_offset=-30, steps=[deploy_step(PASSED)])
    first = dep(4, "web", "staging", 8, WAITING, queued_at_offset=-20)
    second = dep(5, "pay", "staging", 2, WAITING, queued_at_offset=-10)
    s = snap(
        apps=[API, WEB, app("pay", groups=["payments"])],
        deployments=[holder, first, second],
        locks=locks_held(holder, API),
    )
    assert [brief(i) for i in plan_next(s, NOW).intents] == [
        ("Succeed", 3),
        ("Promote", 5, "production", "auto:5:production"),
        ("Start", 4),
        ("Note", "pay", "staging", "WaitInArrivalOrder"),
    ]


def test_a_failure_in_this_pass_frees_nothing_until_it_is_written() -> None:
    """A failure also blocks the app, which this pass does not foresee: its waiters wait one more pass."""
    holder = dep(3, "api", "staging", 5, DEPLOYING, queued_at_offset=-30, steps=[deploy_step(FAILED)])
    waiter = dep(4, "web", "staging", 8, WAITING, queued_at_offset=-20)
    s = snap(apps=[API, WEB], deployments=[holder, waiter], locks=locks_held(holder, API))
    assert [brief(i) for i in plan_next(s, NOW).intents] == [("Fail", 3, 11), ("Note", "web", "staging", "WaitForLock")]


def test_a_rollback_by_hand_in_production_is_not_undone_by_promoting_again() -> None:
    """An operator deployed v1 to production while v2 ran there (v2 passed staging): v1 becomes what runs,
    and v2, deployed there once already, is not promoted again."""
    late = replace(dep(6, "web", "production", 1, DEPLOYING, steps=[deploy_step(PASSED)]), explicit=True)
    s = snap(
        apps=[app("web")],
        deployments=[late],
        succeeded={("web", "staging"): 2, ("web", "production"): 2},
        deployed=[(2, "production")],
    )
    assert briefs(s) == [("Succeed", 6)]


def test_an_older_release_put_back_in_staging_is_not_promoted_over_a_newer_one_in_production() -> None:
    late = replace(dep(6, "web", "staging", 2, DEPLOYING, steps=[deploy_step(PASSED)]), explicit=True)
    s = snap(apps=[app("web")], deployments=[late], succeeded={("web", "staging"): 8, ("web", "production"): 8})
    assert briefs(s) == [("Succeed", 6)]


def test_active_deployments_are_not_scheduled_again() -> None:
    d = dep(1, "api", "staging", 5, DEPLOYING, steps=[deploy_step(PASSED)])
    assert briefs(snap(deployments=[d], locks=locks_held(d))) == [
        ("Succeed", 1),
        ("Promote", 5, "production", "auto:5:production"),
    ]


def test_a_promotion_is_planned_until_the_deployment_exists() -> None:
    s = snap(succeeded={("api", "integration"): 5})
    assert briefs(s) == [("Promote", 5, "staging", "auto:5:staging")]
    assert briefs(snap(succeeded={("api", "integration"): 5}, deployed=[(5, "staging")])) == []


@pytest.mark.parametrize(
    ("intents", "changes"),
    [
        pytest.param([], False, id="empty"),
        pytest.param([Note(None)], False, id="only notes"),
        pytest.param([Note(None), Wait(None, deployment_id=1)], True, id="a note and a wait"),
        pytest.param([Start(None, deployment_id=1, locks=())], True, id="a start"),
    ],
)
def test_plan_changes_state(intents: list[Intent], changes: bool) -> None:
    assert Plan(intents).changes_state is changes


def test_an_idle_snapshot_plans_nothing() -> None:
    plan = plan_next(snap(apps=[app("api")]), NOW)
    assert plan.intents == [] and not plan.changes_state


# -- Decision.fingerprint ---------------------------------------------------------------------------


def decision(**changes: object) -> Decision:
    fields: dict[str, object] = {
        "app": "api",
        "environment": "staging",
        "verdict": Verdict.WAIT,
        "rule": "WaitForLock",
        "summary": "waiting for lock app:api:staging",
        "reasons": ("busy",),
        "evidence": {"lock": "app:api:staging", "holder_deployment": 3},
        "deployment_id": 4,
        "release_id": 8,
    }
    fields.update(changes)
    return Decision(**fields)  # type: ignore[arg-type]


def test_fingerprint_is_stable_for_equal_decisions() -> None:
    assert decision().fingerprint == decision().fingerprint
    assert len(decision().fingerprint) == 32
    assert int(decision().fingerprint, 16) >= 0


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"summary": "waiting for lock group:payments:staging"}, id="summary"),
        pytest.param({"verdict": Verdict.HOLD}, id="verdict"),
        pytest.param({"rule": "WaitInArrivalOrder"}, id="rule"),
        pytest.param({"deployment_id": 5}, id="deployment"),
        pytest.param({"release_id": 9}, id="release"),
    ],
)
def test_fingerprint_differs_when_the_decision_says_something_else(changes: dict[str, object]) -> None:
    assert decision(**changes).fingerprint != decision().fingerprint


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"reasons": ("still busy",)}, id="reasons"),
        pytest.param({"evidence": {"holder_deployment": 3, "lock": "app:api:staging", "at": "12:01"}}, id="evidence"),
    ],
)
def test_fingerprint_ignores_supporting_detail(changes: dict[str, object]) -> None:
    """Evidence (timestamps, counts) may vary between passes without making a new decision."""
    assert decision(**changes).fingerprint == decision().fingerprint


# -- a promotion that starts at once ---------------------------------------------------------------


def _promotions(s: Snapshot) -> dict[str, Promote]:
    return {i.app: i for i in plan_next(s, NOW).intents if isinstance(i, Promote)}


def test_a_promotion_carries_the_start_of_its_deployment_when_nothing_would_keep_it_waiting() -> None:
    promote = _promotions(snap(succeeded={("api", "integration"): 5}))["api"]
    start = promote.then_start
    assert start is not None
    assert (start.locks, start.deployment_id) == (("app:api:staging",), 0)  # the id is not known yet
    decision = decision_of(start)
    assert (decision.app, decision.environment, decision.release_id) == ("api", "staging", 5)
    assert (decision.rule, decision.verdict) == ("StartWhenLocksFree", Verdict.PROCEED)
    assert decision.summary == "deploying v5 to staging: no hold, locks app:api:staging acquired"
    named = start.of(42)
    assert (named.deployment_id, decision_of(named).deployment_id) == (42, 42)


@pytest.mark.parametrize(
    "situation",
    [
        pytest.param(
            lambda: snap(succeeded={("api", "integration"): 5}, holds=[freeze("api", "staging")]), id="frozen"
        ),
        pytest.param(
            lambda: snap(
                apps=[API, WEB],
                succeeded={("api", "integration"): 5},
                deployments=[dep(7, "web", "staging", 2, WAITING, -10)],
                locks={"group:payments:staging": 99},
            ),
            id="its group lock is held and a waiter is ahead",
        ),
        pytest.param(
            lambda: snap(
                apps=[API, WEB],
                succeeded={("api", "integration"): 5},
                deployments=[dep(7, "web", "staging", 2, PENDING, -10)],
            ),
            id="an earlier arrival takes its group lock",
        ),
        pytest.param(
            lambda: snap(
                succeeded={("api", "integration"): 5}, deployments=[dep(7, "api", "staging", 4, WAITING, -10)]
            ),
            id="an older release waits in that place",
        ),
    ],
)
def test_a_promotion_leaves_its_deployment_to_the_next_pass_when_something_could_keep_it_waiting(
    situation: Callable[[], Snapshot],
) -> None:
    """The next pass judges the new deployment with the others, and records why it waits."""
    s = situation()
    assert _promotions(s)["api"].then_start is None
    assert not [
        i for i in plan_next(s, NOW).intents if i.decision and i.decision.app == "api" and isinstance(i, (Note, Wait))
    ]


def test_promotions_sharing_a_group_lock_start_one_at_a_time() -> None:
    s = snap(apps=[API, WEB], succeeded={("api", "integration"): 5, ("web", "integration"): 8})
    promotions = _promotions(s)
    assert promotions["api"].then_start is not None
    assert promotions["web"].then_start is None  # api's start takes group:payments:staging first


def test_a_lock_freed_by_a_success_in_this_pass_lets_the_promotion_start() -> None:
    holder = dep(3, "web", "staging", 8, DEPLOYING, queued_at_offset=-30, steps=[deploy_step(PASSED)])
    s = snap(
        apps=[API, WEB], deployments=[holder], succeeded={("api", "integration"): 5}, locks=locks_held(holder, WEB)
    )
    assert _promotions(s)["api"].then_start is not None
