"""The planner's rules, each alone, table by table (builders in :mod:`tests.unit.planner_builders`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conveyor.domain import rules
from conveyor.domain.decisions import Fail, Note, Promote, Supersede
from conveyor.domain.holds import HoldView
from conveyor.domain.model import DeploymentState, HoldKind, Verdict
from conveyor.domain.snapshot import AppPolicy, DeploymentView, StepView
from tests.unit.planner_builders import (
    BAKING,
    CANCELLED,
    DEPLOYING,
    FAILED,
    NOW,
    PASSED,
    PENDING,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    VERIFYING,
    WAITING,
    app,
    block,
    brief,
    check,
    dep,
    deploy_step,
    freeze,
    snap,
)

# -- SupersedeOlderRelease ------------------------------------------------------------------------

# The deployment under test: release 5 of api, not started, in staging.
OLDER = dep(1, "api", "staging", 5, PENDING)

# (id, other open deployments, latest succeeded in places, superseding release or None)
SUPERSEDE_ROWS: list[tuple[str, list[DeploymentView], dict[tuple[str, str], int], int | None]] = [
    ("newer pending in the same place", [dep(2, "api", "staging", 6, PENDING)], {}, 6),
    ("newer waiting in the same place", [dep(2, "api", "staging", 6, WAITING)], {}, 6),
    ("newer deploying in the same place", [dep(2, "api", "staging", 6, DEPLOYING)], {}, 6),
    ("newer verifying in the same place", [dep(2, "api", "staging", 6, VERIFYING)], {}, 6),
    ("newer already succeeded there", [], {("api", "staging"): 7}, 7),
    (
        "the newest of several names the superseder",
        [dep(2, "api", "staging", 6, PENDING), dep(3, "api", "staging", 8, DEPLOYING)],
        {("api", "staging"): 7},
        8,
    ),
    ("nothing else there", [], {}, None),
    ("older pending does not supersede newer", [dep(2, "api", "staging", 4, PENDING)], {}, None),
    ("older running does not supersede newer", [dep(2, "api", "staging", 4, DEPLOYING)], {}, None),
    ("older succeeded does not supersede newer", [], {("api", "staging"): 4}, None),
    ("the same release does not supersede itself", [dep(2, "api", "staging", 5, PENDING)], {}, None),
    ("newer in another environment", [dep(2, "api", "production", 6, PENDING)], {}, None),
    ("newer succeeded in another environment", [], {("api", "integration"): 6}, None),
    ("newer of another app", [dep(2, "web", "staging", 6, PENDING)], {("web", "staging"): 9}, None),
]


@pytest.mark.parametrize(
    ("others", "succeeded", "by"), [r[1:] for r in SUPERSEDE_ROWS], ids=[r[0] for r in SUPERSEDE_ROWS]
)
def test_supersede_older_release(
    others: list[DeploymentView], succeeded: dict[tuple[str, str], int], by: int | None
) -> None:
    result = rules.supersede_older_release(OLDER, snap(deployments=[OLDER, *others], succeeded=succeeded))
    assert (result.by_release_id if result else None) == by


def test_supersede_decision_explains_itself() -> None:
    newer = dep(2, "api", "staging", 6, PENDING)
    result = rules.supersede_older_release(OLDER, snap(deployments=[OLDER, newer]))
    assert isinstance(result, Supersede)
    assert result.deployment_id == OLDER.id
    decision = result.decision
    assert decision is not None
    assert (decision.verdict, decision.rule) == (Verdict.SUPERSEDE, "SupersedeOlderRelease")
    assert (decision.app, decision.environment) == ("api", "staging")
    assert (decision.deployment_id, decision.release_id) == (1, 5)
    assert decision.evidence == {"superseded_release": 5, "by_release": 6}
    assert "v5" in decision.summary and "(v6)" in decision.summary


# -- HoldWhileBlocked / HoldWhileFrozen -------------------------------------------------------------

# A block after release 5 of api failed in staging.
STAGING_BLOCK = block("api", "staging", 5, id=1)


def api(env: str, release: int) -> DeploymentView:
    return dep(1, "api", env, release)


def web(env: str, release: int) -> DeploymentView:
    return dep(1, "web", env, release)


# (id, holds, deployment, id of the hold that stops it or None)
# fmt: off
HOLD_ROWS: list[tuple[str, list[HoldView], DeploymentView, int | None]] = [
    ("block stops the failed release again", [STAGING_BLOCK], api("staging", 5), 1),
    ("block stops an older release in its env", [STAGING_BLOCK], api("staging", 4), 1),
    ("fix-forward: a newer release may try the env", [STAGING_BLOCK], api("staging", 6), None),
    ("block stops a later env, older release", [STAGING_BLOCK], api("production", 4), 1),
    ("block stops a later env, same release", [STAGING_BLOCK], api("production", 5), 1),
    ("block stops a later env, even a newer release", [STAGING_BLOCK], api("production", 6), 1),
    ("block leaves an earlier env alone", [STAGING_BLOCK], api("integration", 5), None),
    ("block leaves an earlier env alone, newer", [STAGING_BLOCK], api("integration", 6), None),
    ("block leaves other apps alone", [STAGING_BLOCK], web("staging", 5), None),
    ("expired block is ignored", [block("api", "staging", 5, until_offset=-1)], api("staging", 5), None),
    ("block ending exactly now is over", [block("api", "staging", 5, until_offset=0)], api("staging", 5),
     None),
    ("block ending later still holds", [block("api", "staging", 5, until_offset=5)], api("staging", 5), 1),
    ("block for an env no longer configured", [block("api", "qa", 5)], api("production", 5), None),
    ("freeze on every app and env: integration", [freeze(id=2)], api("integration", 6), 2),
    ("freeze on every app and env: production", [freeze(id=2)], web("production", 6), 2),
    ("freeze on one app stops it everywhere", [freeze("api", id=2)], api("integration", 6), 2),
    ("freeze on one app leaves others", [freeze("api", id=2)], web("integration", 6), None),
    ("freeze on one env stops every app there", [freeze(env="production", id=2)], web("production", 6), 2),
    ("freeze on one env leaves earlier envs", [freeze(env="production", id=2)], web("staging", 6), None),
    ("freeze on one app in one env", [freeze("api", "staging", id=2)], api("staging", 6), 2),
    ("freeze on app+env leaves its other envs", [freeze("api", "staging", id=2)], api("production", 6), None),
    ("freeze on app+env leaves other apps", [freeze("api", "staging", id=2)], web("staging", 6), None),
    ("freeze has no fix-forward", [freeze("api", "staging", id=2)], api("staging", 99), 2),
    ("expired freeze is ignored", [freeze(id=2, until_offset=-30)], api("production", 6), None),
    ("freeze with a future end still holds", [freeze(id=2, until_offset=30)], api("production", 6), 2),
    ("expired freeze does not hide a live one", [freeze(id=2, until_offset=-1), freeze("api", id=3)],
     api("staging", 6), 3),
    ("no holds", [], api("production", 6), None),
]
# fmt: on


@pytest.mark.parametrize(("holds", "d", "hold_id"), [r[1:] for r in HOLD_ROWS], ids=[r[0] for r in HOLD_ROWS])
def test_stopping_holds(holds: list[HoldView], d: DeploymentView, hold_id: int | None) -> None:
    found = rules.stopping_holds(d, snap(apps=[app("api"), app("web")], deployments=[d], holds=holds), NOW)
    first = found[0].hold if found else None
    assert (first.id if first else None) == hold_id


def test_block_decision_says_how_it_lifts() -> None:
    d = dep(7, "api", "production", 5)
    decision = rules.hold_decision(d, rules.stopping_holds(d, snap(deployments=[d], holds=[STAGING_BLOCK]), NOW))
    assert (decision.verdict, decision.rule) == (Verdict.HOLD, "HoldWhileBlocked")
    assert (decision.app, decision.environment, decision.deployment_id) == ("api", "production", 7)
    assert "release newer than v5 passes staging" in decision.summary
    assert "conveyor unblock api --env staging --reason" in decision.summary
    assert decision.evidence["hold_id"] == 1
    assert decision.evidence["kind"] == HoldKind.BLOCK.value
    assert decision.evidence["hold_environment"] == "staging"


def test_freeze_decision_names_actor_and_reason() -> None:
    d = dep(7, "api", "production", 5)
    decision = rules.hold_decision(
        d, rules.stopping_holds(d, snap(deployments=[d], holds=[freeze(env="production")]), NOW)
    )
    assert (decision.verdict, decision.rule) == (Verdict.HOLD, "HoldWhileFrozen")
    assert "by an operator: end-of-quarter freeze" in decision.summary
    assert decision.reasons == ("end-of-quarter freeze",)


# -- advancing active deployments ------------------------------------------------------------------

CHECKED: dict[str, tuple[str, ...]] = {"staging": ("smoke", "health")}

# (id, state, steps, checks configured per env, expected brief)
ADVANCE_ROWS: list[tuple[str, DeploymentState, list[StepView], dict[str, tuple[str, ...]], object]] = [
    ("deploying: no deploy step yet", DEPLOYING, [], {}, None),
    ("deploying: deploy queued", DEPLOYING, [deploy_step(QUEUED)], CHECKED, None),
    ("deploying: deploy running", DEPLOYING, [deploy_step(RUNNING)], CHECKED, None),
    ("deploying: deploy succeeded, no checks", DEPLOYING, [deploy_step(PASSED)], {}, ("Succeed", 1)),
    (
        "deploying: deploy succeeded, checks only elsewhere",
        DEPLOYING,
        [deploy_step(PASSED)],
        {"production": ("smoke",)},
        ("Succeed", 1),
    ),
    (
        "deploying: deploy succeeded, checks to run",
        DEPLOYING,
        [deploy_step(PASSED)],
        CHECKED,
        ("Verify", 1, ("smoke", "health")),
    ),
    ("deploying: deploy failed", DEPLOYING, [deploy_step(FAILED, id=11)], CHECKED, ("Fail", 1, 11)),
    ("deploying: deploy cancelled", DEPLOYING, [deploy_step(CANCELLED, id=11)], CHECKED, ("Fail", 1, 11)),
    (
        "deploying: the newest deploy step decides",
        DEPLOYING,
        [deploy_step(FAILED, id=11), deploy_step(PASSED, id=12)],
        {},
        ("Succeed", 1),
    ),
    (
        "verifying: all checks succeeded",
        VERIFYING,
        [deploy_step(PASSED), check("smoke", PASSED, id=21), check("health", PASSED, id=22)],
        CHECKED,
        ("Succeed", 1),
    ),
    (
        "verifying: checks queued",
        VERIFYING,
        [deploy_step(PASSED), check("smoke", QUEUED, id=21), check("health", QUEUED, id=22)],
        CHECKED,
        None,
    ),
    (
        "verifying: one running, one passed",
        VERIFYING,
        [deploy_step(PASSED), check("smoke", PASSED, id=21), check("health", RUNNING, id=22)],
        CHECKED,
        None,
    ),
    (
        "verifying: one failed, others queued -> cancel them",
        VERIFYING,
        [check("smoke", FAILED, id=21), check("health", QUEUED, id=22), check("load", QUEUED, id=23)],
        CHECKED,
        ("CancelSteps", 1, (22, 23)),
    ),
    (
        "verifying: one failed, one queued, one running -> cancel the queued, stop the running",
        VERIFYING,
        [check("smoke", FAILED, id=21), check("health", RUNNING, id=22), check("load", QUEUED, id=23)],
        CHECKED,
        ("CancelSteps", 1, (23,), (22,)),
    ),
    (
        "verifying: one failed, one running -> stop it",
        VERIFYING,
        [check("smoke", FAILED, id=21), check("health", RUNNING, id=22)],
        CHECKED,
        ("CancelSteps", 1, (), (22,)),
    ),
    (
        "verifying: one failed, one running already asked to stop -> waits for it",
        VERIFYING,
        [check("smoke", FAILED, id=21), replace(check("health", RUNNING, id=22), stopping=True)],
        CHECKED,
        None,
    ),
    (
        "verifying: one failed, the rest succeeded",
        VERIFYING,
        [check("smoke", PASSED, id=21), check("health", FAILED, id=22)],
        CHECKED,
        ("Fail", 1, 22),
    ),
    (
        "verifying: the failed check is named, not the cancelled one",
        VERIFYING,
        [check("smoke", CANCELLED, id=21), check("health", FAILED, id=22)],
        CHECKED,
        ("Fail", 1, 22),
    ),
    (
        "verifying: only cancelled checks",
        VERIFYING,
        [check("smoke", CANCELLED, id=21), check("health", PASSED, id=22)],
        CHECKED,
        ("Fail", 1, 21),
    ),
    ("verifying: no check steps yet", VERIFYING, [deploy_step(PASSED)], CHECKED, None),
    ("pending: not active", PENDING, [], CHECKED, None),
    ("waiting: not active", WAITING, [], CHECKED, None),
    ("baking: nothing to advance yet", BAKING, [deploy_step(PASSED)], CHECKED, None),
    ("succeeded: terminal", SUCCEEDED, [deploy_step(PASSED)], {}, None),
]


@pytest.mark.parametrize(
    ("state", "steps", "checks", "expected"), [r[1:] for r in ADVANCE_ROWS], ids=[r[0] for r in ADVANCE_ROWS]
)
def test_advance_active(
    state: DeploymentState, steps: list[StepView], checks: dict[str, tuple[str, ...]], expected: object
) -> None:
    d = dep(1, "api", "staging", 5, state, steps=steps)
    assert brief(rules.advance_active(d, snap(apps=[app("api", checks=checks)], deployments=[d]), NOW)) == expected


def test_failed_deploy_names_release_step_and_evidence() -> None:
    step = deploy_step(FAILED, id=11, outcome="exit status 2")
    d = dep(1, "api", "staging", 5, DEPLOYING, steps=[step])
    result = rules.advance_active(d, snap(deployments=[d]), NOW)
    assert isinstance(result, Fail)
    assert result.summary == "release v5 failed deploy in staging: exit status 2"
    assert result.step_id == 11
    assert result.evidence["step_id"] == 11
    assert result.evidence["kind"] == "deploy"
    assert result.decision is not None
    assert (result.decision.verdict, result.decision.rule) == (Verdict.VETO, "FailedReleaseStops")
    assert result.decision.summary == result.summary
    assert result.decision.reasons == ("exit status 2",)


def test_failed_check_is_named_in_the_summary() -> None:
    d = dep(1, "api", "staging", 5, VERIFYING, steps=[check("smoke", FAILED, id=21, outcome="HTTP 503")])
    result = rules.advance_active(d, snap(apps=[app("api", checks=CHECKED)], deployments=[d]), NOW)
    assert isinstance(result, Fail)
    assert "check 'smoke'" in result.summary
    assert "v5" in result.summary and "HTTP 503" in result.summary
    assert result.evidence["step_id"] == 21


def test_failure_without_detail_says_so() -> None:
    d = dep(1, "api", "staging", 5, DEPLOYING, steps=[deploy_step(FAILED)])
    result = rules.advance_active(d, snap(deployments=[d]), NOW)
    assert isinstance(result, Fail)
    assert result.summary.endswith(": no detail")


# -- promoting successes ---------------------------------------------------------------------------

MANUAL = app("api", tier="manual", reason="handles payments")

# (id, policy, latest succeeded per place, (release, env) deployed, env that succeeded, expected brief)
# fmt: off
PROMOTE_ROWS: list[tuple[str, AppPolicy, dict[tuple[str, str], int], list[tuple[int, str]], str, object]] = [
    ("auto: integration to staging", app("api"), {("api", "integration"): 5}, [], "integration",
     ("Promote", 5, "staging", "auto:5:staging")),
    ("auto: staging to production", app("api"), {("api", "staging"): 5}, [], "staging",
     ("Promote", 5, "production", "auto:5:production")),
    ("auto: target has an older success", app("api"), {("api", "staging"): 5, ("api", "production"): 4},
     [], "staging", ("Promote", 5, "production", "auto:5:production")),
    ("last environment: nowhere to go", app("api"), {("api", "production"): 5}, [], "production", None),
    ("already deployed there (any outcome)", app("api"), {("api", "staging"): 5}, [(5, "production")],
     "staging", None),
    ("target already has this release", app("api"), {("api", "staging"): 5, ("api", "production"): 5},
     [], "staging", None),
    ("target already has a newer release", app("api"), {("api", "staging"): 5, ("api", "production"): 6},
     [], "staging", None),
    ("nothing succeeded here", app("api"), {("api", "integration"): 5}, [], "staging", None),
    ("manual: non-last envs promote on their own", MANUAL, {("api", "integration"): 5}, [], "integration",
     ("Promote", 5, "staging", "auto:5:staging")),
    ("manual: waits before the last env", MANUAL, {("api", "staging"): 5}, [], "staging",
     ("Note", "api", "production", "ManualTierWaitsForPromotion")),
    ("manual: once promoted by a person, quiet", MANUAL, {("api", "staging"): 5}, [(5, "production")],
     "staging", None),
]
# fmt: on


@pytest.mark.parametrize(
    ("policy", "succeeded", "deployed", "source", "expected"),
    [r[1:] for r in PROMOTE_ROWS],
    ids=[r[0] for r in PROMOTE_ROWS],
)
def test_promote_succeeded(
    policy: AppPolicy,
    succeeded: dict[tuple[str, str], int],
    deployed: list[tuple[int, str]],
    source: str,
    expected: object,
) -> None:
    s = snap(apps=[policy], succeeded=succeeded, deployed=deployed)
    assert brief(rules.promote_succeeded("api", source, s, NOW)) == expected


def test_promote_of_an_app_no_longer_configured_is_ignored() -> None:
    s = snap(apps=[], succeeded={("gone", "integration"): 5})
    assert rules.promote_succeeded("gone", "integration", s, NOW) is None


def test_promotion_decision() -> None:
    result = rules.promote_succeeded("api", "staging", snap(succeeded={("api", "staging"): 5}), NOW)
    assert isinstance(result, Promote)
    assert (result.app, result.release_id, result.environment) == ("api", 5, "production")
    assert result.decision is not None
    assert (result.decision.verdict, result.decision.rule) == (Verdict.PROCEED, "PromoteOnSuccess")
    assert (result.decision.app, result.decision.environment) == ("api", "production")
    assert result.decision.summary == "promoting v5: it passed staging"
    assert result.decision.evidence["deployment_id"] == 1005


def test_manual_tier_waits_with_its_reason() -> None:
    result = rules.promote_succeeded("api", "staging", snap(apps=[MANUAL], succeeded={("api", "staging"): 5}), NOW)
    assert isinstance(result, Note)
    decision = result.decision
    assert decision is not None
    assert (decision.verdict, decision.rule) == (Verdict.WAIT, "ManualTierWaitsForPromotion")
    assert (decision.app, decision.environment, decision.release_id) == ("api", "production", 5)
    assert "manual tier: handles payments" in decision.summary
    assert "conveyor promote api --to production" in decision.summary
    assert decision.reasons == ("handles payments",)


def test_promote_from_an_environment_no_longer_configured_is_ignored() -> None:
    s = snap(apps=[app("api")], succeeded={("api", "qa"): 5})
    assert rules.promote_succeeded("api", "qa", s, NOW) is None


def test_explicit_rollback_is_not_superseded_by_the_live_release() -> None:
    rollback = replace(dep(1, "api", "staging", 3, PENDING), explicit=True)
    assert (
        rules.supersede_older_release(rollback, snap(deployments=[rollback], succeeded={("api", "staging"): 5})) is None
    )


def test_explicit_rollback_still_gives_way_to_a_newer_release_to_come() -> None:
    rollback = replace(dep(1, "api", "staging", 3, PENDING), explicit=True)
    newer = dep(2, "api", "staging", 6, PENDING)
    result = rules.supersede_older_release(rollback, snap(deployments=[rollback, newer]))
    assert result is not None and result.by_release_id == 6
