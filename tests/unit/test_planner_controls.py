"""The planner's side of the controls, table by table: what runs where (placements) decides promotion,
vetoes after a rollback, overrides, ``on_failure: rollback``, cancel, the bake tier, and the state a
Succeed is planned from."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from conveyor.domain import rules
from conveyor.domain.decisions import Bake, Cancel, CancelSteps, Fail, Note, RepeatChecks, Succeed
from conveyor.domain.model import DeploymentState, Health, Override, Verdict
from conveyor.domain.planner import plan_next
from conveyor.domain.snapshot import AppPolicy, DeploymentView, Placement
from tests.unit.planner_builders import (
    BAKING,
    DEPLOYING,
    FAILED,
    NOW,
    PASSED,
    QUEUED,
    RUNNING,
    VERIFYING,
    app,
    block,
    brief,
    check,
    dep,
    deploy_step,
    freeze,
    minutes,
    placed,
    snap,
    veto,
)

CHECKED = {env: ("smoke",) for env in ("integration", "staging", "production")}


def briefs(s: object) -> list[object]:
    return [brief(i) for i in plan_next(s, NOW).intents]  # type: ignore[arg-type]


# -- promotion takes what runs healthy -------------------------------------------------------------

PROMOTE_ROWS: list[tuple[str, dict[tuple[str, str], Placement], list[object], list[object]]] = [
    ("healthy in staging, older in production", {("web", "staging"): placed(2), ("web", "production"): placed(1)},
     [], [("Promote", 2, "production", "auto:2:production")]),
    ("failing in staging: not promoted", {("web", "staging"): placed(2, Health.FAILING, good=1)}, [], []),
    ("still checking in staging: not yet", {("web", "staging"): placed(2, Health.CHECKING, good=1)}, [], []),
    ("unknown health in staging: not promoted", {("web", "staging"): placed(2, Health.UNKNOWN)}, [], []),
    ("staging rolled back to v1 while production runs v2: nothing",
     {("web", "staging"): placed(1, good=1), ("web", "production"): placed(2)}, [], []),
    ("v2 vetoed in production: noted, never promoted",
     {("web", "staging"): placed(2), ("web", "production"): placed(1)}, [veto("web", "production", 2)],
     [("Note", "web", "production", "VetoRolledBackRelease")]),
    ("a newer release is not affected by the veto",
     {("web", "staging"): placed(3), ("web", "production"): placed(1)}, [veto("web", "production", 2)],
     [("Promote", 3, "production", "auto:3:production")]),
    ("a veto in another environment says nothing here",
     {("web", "staging"): placed(2), ("web", "production"): placed(1)}, [veto("web", "staging", 2)],
     [("Promote", 2, "production", "auto:2:production")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("places", "holds", "expected"), [r[1:] for r in PROMOTE_ROWS], ids=[r[0] for r in PROMOTE_ROWS]
)
def test_promotion_takes_the_release_current_and_healthy_before(
    places: dict[tuple[str, str], Placement], holds: list[object], expected: list[object]
) -> None:
    assert briefs(snap(apps=[app("web")], succeeded=places, holds=holds)) == expected  # type: ignore[arg-type]


def test_the_veto_note_says_who_rolled_back_when_and_why() -> None:
    s = snap(
        apps=[app("web")],
        succeeded={("web", "staging"): placed(2), ("web", "production"): placed(1)},
        holds=[veto("web", "production", 2, actor="cli:an-operator")],
    )
    (intent,) = plan_next(s, NOW).intents
    assert isinstance(intent, Note) and intent.decision is not None
    summary = intent.decision.summary
    assert summary.startswith("vetoed: v2 was rolled back by cli:an-operator at "), summary
    assert "11:30 UTC (bad gateway errors)" in summary
    assert "conveyor unveto web v2 --env production" in summary


# -- holds: veto and overrides, through the one scoping function ---------------------------------

HOLD_ROWS: list[tuple[str, object, list[object], str | None]] = [
    ("automatic v2 vetoed there", dep(1, "web", "production", 2), [veto("web", "production", 2)], "veto"),
    ("explicit v2 passes its veto", replace(dep(1, "web", "production", 2), explicit=True),
     [veto("web", "production", 2)], None),
    ("newer v3 passes the veto of v2", dep(1, "web", "production", 3), [veto("web", "production", 2)], None),
    ("veto elsewhere", dep(1, "web", "staging", 2), [veto("web", "production", 2)], None),
    ("rollback passes a block", replace(dep(1, "web", "production", 1), override=Override.ROLLBACK),
     [block("web", "production", 2)], None),
    ("rollback passes a freeze", replace(dep(1, "web", "production", 1), override=Override.ROLLBACK),
     [freeze(env="production")], None),
    ("rollback passes a veto of its own release", replace(dep(1, "web", "production", 2), override=Override.ROLLBACK),
     [veto("web", "production", 2)], None),
    ("rollback passes an upstream block too",
     replace(dep(1, "web", "production", 1), override=Override.ROLLBACK), [block("web", "staging", 2)], None),
    ("force passes a freeze", replace(dep(1, "web", "production", 1), override=Override.FORCE),
     [freeze(env="production")], None),
    ("force does not pass a block", replace(dep(1, "web", "production", 1), override=Override.FORCE),
     [block("web", "production", 2)], "block"),
]  # fmt: skip


@pytest.mark.parametrize(("d", "holds", "kind"), [r[1:] for r in HOLD_ROWS], ids=[r[0] for r in HOLD_ROWS])
def test_veto_and_override(d: object, holds: list[object], kind: str | None) -> None:
    found = rules.stopping_holds(d, snap(apps=[app("web")], deployments=[d], holds=holds), NOW)  # type: ignore[list-item,arg-type]
    assert (found[0].kind if found else None) == kind


def test_a_vetoed_deployment_waits_saying_why() -> None:
    s = snap(apps=[app("web")], deployments=[dep(1, "web", "production", 2)], holds=[veto("web", "production", 2)])
    assert briefs(s) == [("Wait", 1, "VetoRolledBackRelease")]


def test_a_rollback_is_never_superseded() -> None:
    rollback = replace(dep(1, "web", "production", 1), override=Override.ROLLBACK, explicit=True)
    newer = dep(2, "web", "production", 3, queued_at_offset=5)
    assert rules.supersede_older_release(rollback, snap(deployments=[rollback, newer], succeeded={
        ("web", "production"): 2})) is None  # fmt: skip


def test_a_deployment_of_the_release_that_runs_there_is_superseded_unless_explicit() -> None:
    """An operator deployed v2 by hand past what held the automatic deployment of v2: that one would
    only deploy it again. A redeploy asked for by hand is meant, and goes ahead."""
    automatic = dep(1, "web", "production", 2)
    s = snap(deployments=[automatic], succeeded={("web", "production"): placed(2, deployment_id=7)})
    superseded = rules.supersede_older_release(automatic, s)
    assert superseded is not None and superseded.decision is not None
    assert superseded.decision.rule == "SupersedeLiveRelease"
    assert superseded.decision.summary == (
        "superseded: v2 already runs in production (deployment #7); it will not deploy there again"
    )
    assert briefs(s) == [("Supersede", 1, 2)]
    redeploy = replace(automatic, explicit=True)
    assert rules.supersede_older_release(redeploy, replace(s, open_deployments=(redeploy,))) is None


# -- on_failure ------------------------------------------------------------------------------------


def _policy(on_failure: str = "rollback", **more: object) -> AppPolicy:
    return replace(app("web", checks=CHECKED), on_failure=dict.fromkeys(CHECKED, on_failure), **more)  # type: ignore[arg-type]


FAILING_CHECKS = [deploy_step(PASSED), check("smoke", FAILED, id=21, outcome="HTTP 500")]
STOPPED_PREVIOUS = replace(deploy_step(FAILED, outcome="exited at once"), evidence={"previous_stopped": True})

ROLLBACK_ROWS: list[tuple[str, AppPolicy, object, Placement | None, int | None]] = [
    ("checks failed, last good v1: roll back to it", _policy(), dep(5, "web", "production", 2, VERIFYING,
     steps=FAILING_CHECKS), placed(2, Health.CHECKING, good=1), 1),
    ("on_failure hold: no rollback", _policy("hold"), dep(5, "web", "production", 2, VERIFYING,
     steps=FAILING_CHECKS), placed(2, Health.CHECKING, good=1), None),
    ("deploy step failed: the old release still runs", _policy(), dep(5, "web", "production", 2, DEPLOYING,
     steps=[deploy_step(FAILED)]), placed(1, good=1), None),
    ("nothing good before: nothing to roll back to", _policy(), dep(5, "web", "production", 2, VERIFYING,
     steps=FAILING_CHECKS), placed(2, Health.CHECKING), None),
    ("a failing rollback is not rolled back again", _policy(), replace(dep(5, "web", "production", 1, VERIFYING,
     steps=FAILING_CHECKS), override=Override.ROLLBACK), placed(1, Health.CHECKING, good=0), None),
    ("deploy step failed after stopping the old release: roll back to the last good", _policy(),
     dep(5, "web", "production", 2, DEPLOYING, steps=[STOPPED_PREVIOUS]), placed(1, good=1), 1),
    ("the same with on_failure hold: no rollback", _policy("hold"),
     dep(5, "web", "production", 2, DEPLOYING, steps=[STOPPED_PREVIOUS]), placed(1, good=1), None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "d", "place", "to"), [r[1:] for r in ROLLBACK_ROWS], ids=[r[0] for r in ROLLBACK_ROWS]
)
def test_on_failure_rollback(policy: AppPolicy, d: object, place: Placement | None, to: int | None) -> None:
    places = {("web", "production"): place} if place else {}
    result = rules.advance_active(d, snap(apps=[policy], deployments=[d], succeeded=places), NOW)  # type: ignore[arg-type]
    assert isinstance(result, Fail)
    assert result.rollback_to_release_id == to
    assert ("rolling back to v1" in result.summary) == (to == 1)


# -- cancel ----------------------------------------------------------------------------------------

CANCEL_ROWS = [
    ("deploy running: wait for it to stop", [deploy_step(RUNNING)], None),
    ("checks queued: cancel them first", [deploy_step(PASSED), check("smoke", QUEUED, id=21)],
     ("CancelSteps", 1, (21,))),
    ("deploy stopped: end cancelled", [deploy_step(FAILED, outcome="cancelled")], ("Cancel", 1)),
    ("all passed meanwhile: still cancelled", [deploy_step(PASSED)], ("Cancel", 1)),
]  # fmt: skip


@pytest.mark.parametrize(("steps", "expected"), [r[1:] for r in CANCEL_ROWS], ids=[r[0] for r in CANCEL_ROWS])
def test_a_cancelled_deployment_ends_once_nothing_runs(steps: list[object], expected: object) -> None:
    d = replace(dep(1, "web", "staging", 2, DEPLOYING, steps=steps), cancel_requested=True)  # type: ignore[arg-type]
    result = rules.advance_active(d, snap(apps=[app("web")], deployments=[d]), NOW)
    assert brief(result) == expected
    assert result is None or isinstance(result, Cancel | CancelSteps)


# -- Succeed names the state it is planned from, and the bake tier ----------------------------------


def test_succeed_names_the_state_it_comes_from() -> None:
    plain = dep(1, "web", "staging", 2, DEPLOYING, steps=[deploy_step(PASSED)])
    result = rules.advance_active(plain, snap(apps=[app("web")], deployments=[plain]), NOW)
    assert isinstance(result, Succeed) and result.from_state == DeploymentState.DEPLOYING
    checked = dep(1, "web", "staging", 2, VERIFYING, steps=[deploy_step(PASSED), check("smoke", PASSED, id=21)])
    result = rules.advance_active(checked, snap(apps=[app("web", checks=CHECKED)], deployments=[checked]), NOW)
    assert isinstance(result, Succeed) and result.from_state == DeploymentState.VERIFYING


BAKER = replace(
    app("web", tier="bake", checks=CHECKED),
    bake=dict.fromkeys(CHECKED, 1800.0),
    bake_interval=dict.fromkeys(CHECKED, 300.0),
)


def _baking(steps: list[object], *, since: float = -12, until: float = 18) -> object:
    d = dep(1, "web", "production", 2, BAKING, steps=steps)  # type: ignore[arg-type]
    return replace(d, baking_since=minutes(since), bake_until=minutes(until))


BAKE_ROWS = [
    ("checks passed, bake tier: bake", dep(1, "web", "production", 2, VERIFYING,
     steps=[deploy_step(PASSED), check("smoke", PASSED, id=21)]), ("Bake", 1800.0, 300.0)),
    ("baking, round passed, time left: the next round on the bake's schedule (15m in)",
     _baking([deploy_step(PASSED), check("smoke", PASSED, id=21)]), ("RepeatChecks", 180.0)),
    ("baking, a round queued: wait", _baking([deploy_step(PASSED), check("smoke", QUEUED, id=21)]), None),
    ("baking, under one interval left: wait for the end",
     _baking([deploy_step(PASSED), check("smoke", PASSED, id=21)], until=2), None),
    ("baking over: succeed", _baking([deploy_step(PASSED), check("smoke", PASSED, id=21)], since=-30, until=0),
     ("Succeed", 1)),
    ("a failure while baking is a failure", _baking([deploy_step(PASSED), check("smoke", FAILED, id=21)]),
     ("Fail", 1, 21)),
]  # fmt: skip


def _bake_brief(intent: object) -> object:
    if isinstance(intent, Bake):
        return ("Bake", intent.seconds, intent.interval)
    if isinstance(intent, RepeatChecks):
        return ("RepeatChecks", intent.after)
    return brief(intent)  # type: ignore[arg-type]


@pytest.mark.parametrize(("d", "expected"), [r[1:] for r in BAKE_ROWS], ids=[r[0] for r in BAKE_ROWS])
def test_bake_tier(d: object, expected: object) -> None:
    result = rules.advance_active(d, snap(apps=[BAKER], deployments=[d]), NOW)  # type: ignore[arg-type,list-item]
    assert _bake_brief(result) == expected
    if isinstance(result, Succeed):
        assert result.from_state == DeploymentState.BAKING


def test_baking_left_reads_minutes() -> None:
    d = _baking([])
    assert rules.baking_left(d, NOW) == "baking: 18m of 30m left"  # type: ignore[arg-type]
    assert rules.baking_left(d, NOW + timedelta(minutes=18, seconds=30)) == "baking: 0s of 30m left"  # type: ignore[arg-type]


def test_auto_tier_does_not_bake() -> None:
    d = dep(1, "web", "production", 2, VERIFYING, steps=[deploy_step(PASSED), check("smoke", PASSED, id=21)])
    policy = replace(app("web", checks=CHECKED), bake=dict.fromkeys(CHECKED, 1800.0))
    assert isinstance(rules.advance_active(d, snap(apps=[policy], deployments=[d]), NOW), Succeed)


@pytest.mark.parametrize(
    ("place", "stopped"),
    [(placed(1, good=1), True), (placed(1, Health.STOPPED, good=1), False), (None, False)],
    ids=["v1 ran there: now stopped", "already stopped: said once", "nothing ran there"],
)
def test_a_failed_deploy_that_stopped_the_previous_release_says_nothing_runs(
    place: Placement | None, stopped: bool
) -> None:
    d = dep(5, "web", "production", 2, DEPLOYING, steps=[STOPPED_PREVIOUS])
    places = {("web", "production"): place} if place else {}
    result = rules.advance_active(d, snap(apps=[_policy("hold")], deployments=[d], succeeded=places), NOW)
    assert isinstance(result, Fail)
    assert result.previous_stopped is stopped
    said = "; nothing runs in production now: v1 was stopped before the deploy failed"
    assert result.summary.endswith(said) is stopped


def test_a_stopped_release_is_not_treated_as_running() -> None:
    """Neither superseded as already live, nor kept from being promoted as already there."""
    pending = replace(dep(7, "web", "production", 1), explicit=False)
    stopped = {("web", "production"): placed(1, Health.STOPPED, good=1)}
    assert (
        rules.supersede_older_release(pending, snap(apps=[app("web")], deployments=[pending], succeeded=stopped))
        is None
    )
    running = {("web", "production"): placed(1, good=1)}
    assert rules.supersede_older_release(pending, snap(apps=[app("web")], deployments=[pending], succeeded=running))


# -- a release rolled back upstream goes no further on its own -------------------------------------

WITHDRAW_ROWS: list[tuple[str, DeploymentView, dict[tuple[str, str], Placement], str | None]] = [
    ("rolled back in integration: its queued promotion to staging is withdrawn",
     dep(7, "web", "staging", 2), {("web", "integration"): placed(1)}, "WithdrawRolledBackRelease"),
    ("deployed by hand: an operator's choice stands",
     replace(dep(7, "web", "staging", 2), explicit=True), {("web", "integration"): placed(1)}, None),
    ("it runs in integration again (deployed there by hand since): not held back",
     dep(7, "web", "staging", 2), {("web", "integration"): placed(2)}, None),
]  # fmt: skip


@pytest.mark.parametrize(("d", "places", "rule"), [r[1:] for r in WITHDRAW_ROWS], ids=[r[0] for r in WITHDRAW_ROWS])
def test_a_queued_promotion_of_a_release_rolled_back_upstream_is_withdrawn(
    d: DeploymentView, places: dict[tuple[str, str], Placement], rule: str | None
) -> None:
    s = snap(apps=[app("web")], deployments=[d], succeeded=places, holds=[veto("web", "integration", 2, id=29)])
    result = rules.supersede_older_release(d, s)
    assert (result.decision.rule if result and result.decision else None) == rule
    if result is not None and result.decision is not None:
        assert result.decision.summary == (
            "withdrawn: v2 was rolled back in integration by cli:an-operator (bad gateway errors); "
            "it will not go on to staging"
        )
        assert result.decision.evidence["veto"] == 29


def test_a_release_rolled_back_upstream_is_not_promoted_on() -> None:
    places = {("web", "integration"): placed(1), ("web", "staging"): placed(2)}
    s = snap(apps=[app("web")], succeeded=places, holds=[veto("web", "integration", 2)])
    note = rules.promote_succeeded("web", "staging", s, NOW)
    assert isinstance(note, Note) and note.decision is not None
    assert (note.decision.verdict, note.decision.rule) == (Verdict.VETO, "WithdrawRolledBackRelease")
    assert note.decision.summary.startswith("v2 will not go on to production: it was rolled back in integration")
