"""Releases queued while an older one deploys: the middle one is superseded where it had not started,
the running one is never interrupted, and the newest reaches production."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Decision, Event, Step
from tests.integration.harness import (
    add_commit,
    attempts,
    conductor_running,
    deployment_state,
    deployments,
    load,
    make_app_repo,
    run_until_idle,
    wait_for,
    write_config,
)

CONFIG = """\
environments: [integration, staging, production]
teams: {publishing: {notify: []}}
defaults:
  deploy: {driver: fake, duration: 0.2}
  checks: [{name: smoke, type: fake, count: 1}]
apps:
  web:
    repo: ./repos/web
    team: publishing
    environments:
      integration: {deploy: {duration: 3}}
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_newer_release_supersedes_one_that_has_not_started(tmp_path: Path, db_url: str) -> None:
    repo = tmp_path / "repos" / "web"
    make_app_repo(repo, {"v": "1\n"}, "one")
    config = load(write_config(tmp_path, CONFIG))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        first = ops.create_release("web").release_id
        with conductor_running(config, db_url, concurrency=8, timeout=60):
            wait_for(lambda: deployment_state(db, "web", "integration", first) == "deploying", 10, "deploying")
            add_commit(repo, {"v": "2\n"}, "two")
            middle = ops.create_release("web").release_id
            add_commit(repo, {"v": "3\n"}, "three")
            newest = ops.create_release("web").release_id
            # All three were queued while the first was still deploying.
            assert deployment_state(db, "web", "integration", first) == "deploying"

        assert deployment_state(db, "web", "integration", first) == "succeeded"
        assert deployment_state(db, "web", "integration", middle) == "superseded"
        assert [deployment_state(db, "web", env, newest) for env in ("integration", "staging", "production")] == [
            "succeeded"
        ] * 3
        rows = deployments(db, "web")
        assert [d.environment for d, _ in rows if d.release_id == middle] == ["integration"]
        superseded = next(d for d, _ in rows if d.release_id == middle)
        assert superseded.started_at is None, "the superseded deployment had started"

        # The running deployment was never interrupted: one attempt of its deploy, which succeeded.
        first_deploy = [a for a in attempts(db) if a.release == rows[0][1].label and a.environment == "integration"]
        assert [(a.kind, a.attempt, a.outcome) for a in first_deploy] == [
            ("deploy", 1, "succeeded"),
            ("check", 1, "succeeded"),
        ]
        with db.read() as session:
            assert session.scalars(select(Step).where(Step.deployment_id == superseded.id)).all() == []
            event = session.scalars(
                select(Event).where(Event.kind == "deployment.superseded", Event.deployment_id == superseded.id)
            ).one()
            decision = session.scalars(
                select(Decision).where(
                    Decision.deployment_id == superseded.id, Decision.rule == "SupersedeOlderRelease"
                )
            ).one()
        assert event.payload["by_release"] == newest
        assert decision.verdict == "supersede" and decision.evidence["by_release"] == newest
        live = {d.environment: d.release_id for d, _ in rows if d.state == "succeeded"}
        assert live["production"] == newest
    finally:
        db.dispose()


FROZEN_CONFIG = """\
environments: [staging, production]
teams: {publishing: {notify: []}}
defaults:
  deploy: {driver: fake, duration: 0.1}
  checks: []
apps:
  web: {repo: ./repos/web, team: publishing}
"""


@pytest.mark.timeout(120)
def test_a_release_forced_past_a_freeze_replaces_its_own_waiting_deployment(tmp_path: Path, db_url: str) -> None:
    """The automatic deployment frozen out of production is superseded once an operator deploys the same
    release there by hand: unfreezing does not deploy it a second time."""
    make_app_repo(tmp_path / "repos" / "web", {"v": "1\n"}, "one")
    config = load(write_config(tmp_path, FROZEN_CONFIG))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        ops.create_release("web")
        run_until_idle(config, db_url)
        hold = ops.freeze(None, "production", "release freeze")
        add_commit(tmp_path / "repos" / "web", {"v": "2\n"}, "two")
        second = ops.create_release("web")
        run_until_idle(config, db_url)
        (frozen,) = [
            d for d, _ in deployments(db, "web") if d.release_id == second.release_id and d.environment == "production"
        ]
        assert frozen.state == "waiting"

        forced = ops.deploy("web", second.label, "production", force=True, reason="hotfix")
        run_until_idle(config, db_url)
        ops.unfreeze(hold, "over")
        run_until_idle(config, db_url)

        in_production = {
            d.id: (d.state, d.started_at is not None)
            for d, _ in deployments(db, "web")
            if d.release_id == second.release_id and d.environment == "production"
        }
        assert in_production == {forced: ("succeeded", True), frozen.id: ("superseded", False)}
        with db.read() as session:
            decision = session.scalars(
                select(Decision).where(Decision.deployment_id == frozen.id).order_by(Decision.id.desc())
            ).first()
        assert decision is not None and decision.rule == "SupersedeLiveRelease"
        assert decision.summary == (
            f"superseded: {second.label} already runs in production (deployment #{forced}); "
            "it will not deploy there again"
        )
        with db.read() as session:
            started = session.scalars(
                select(Decision).where(Decision.deployment_id == forced, Decision.rule == "StartWhenLocksFree")
            ).one()
        # the start says what it went past, as the hold.overridden event does
        assert started.summary == (
            f"deploying {second.label} to production: force past freeze #{hold}, locks app:web:production acquired"
        )
        assert [(p["kind"], p["hold_id"]) for p in started.evidence["passed"]] == [("freeze", hold)]
    finally:
        db.dispose()


@pytest.mark.timeout(120)
def test_a_release_rolled_back_upstream_does_not_flow_on_when_a_freeze_lifts(tmp_path: Path, db_url: str) -> None:
    """Its promotion was queued behind a freeze in staging; integration is then rolled back from it.
    Lifting the freeze deploys nothing there: the promotion is withdrawn, and says why."""
    make_app_repo(tmp_path / "repos" / "web", {"v": "1\n"}, "one")
    config = load(write_config(tmp_path, FROZEN_CONFIG.replace("[staging,", "[integration, staging,")))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        first = ops.create_release("web")
        run_until_idle(config, db_url)
        hold = ops.freeze("web", "staging", "hold staging")
        add_commit(tmp_path / "repos" / "web", {"v": "2\n"}, "two")
        second = ops.create_release("web")
        run_until_idle(config, db_url)
        (queued,) = [
            d for d, _ in deployments(db, "web") if d.release_id == second.release_id and d.environment == "staging"
        ]
        assert queued.state == "waiting"

        ops.rollback("web", "integration", "v2 is bad", actor="cli:an-operator")
        run_until_idle(config, db_url)
        ops.unfreeze(hold, "go")
        run_until_idle(config, db_url)

        staged = [(d.release_id, d.state) for d, _ in deployments(db, "web") if d.environment != "integration"]
        assert (second.release_id, "succeeded") not in staged
        assert deployment_state(db, "web", "staging", second.release_id) == "superseded"
        with db.read() as session:
            decision = session.scalars(
                select(Decision).where(Decision.deployment_id == queued.id).order_by(Decision.id.desc())
            ).first()
        assert decision is not None and decision.rule == "WithdrawRolledBackRelease"
        assert decision.summary == (
            f"withdrawn: {second.label} was rolled back in integration by cli:an-operator (v2 is bad); "
            "it will not go on to staging"
        )
        assert deployment_state(db, "web", "staging", first.release_id) == "succeeded"
    finally:
        db.dispose()
