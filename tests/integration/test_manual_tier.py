"""The manual tier: a release stops before the last environment until a person promotes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor import views
from conveyor.errors import OperationError
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Decision, Event
from tests.integration.harness import deployment_state, load, make_app_repo, run_until_idle, write_config

REASON = "runs data migrations by hand"
CONFIG = f"""\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: fake, duration: 0.05}}
  checks: [{{name: smoke, type: fake, count: 1}}]
apps:
  publisher: {{repo: ./repos/publisher, team: publishing, tier: manual, reason: {REASON}}}
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_manual_tier_waits_for_promotion_before_production(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "publisher")
    config = load(write_config(tmp_path, CONFIG))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        release = ops.create_release("publisher")
        run_until_idle(config, db_url, timeout=60)

        assert deployment_state(db, "publisher", "staging", release.release_id) == "succeeded"
        assert deployment_state(db, "publisher", "production", release.release_id) is None
        with db.read() as session:
            decision = session.scalars(
                select(Decision).where(Decision.app == "publisher", Decision.environment == "production")
            ).one()
            waiting = session.scalars(select(Event).where(Event.kind == "promotion.waiting")).one()
        assert decision.rule == "ManualTierWaitsForPromotion" and decision.verdict == "wait"
        assert decision.summary.startswith(f"waiting for promotion — manual tier: {REASON}")
        assert (waiting.app, waiting.environment, waiting.release_id) == (
            "publisher",
            "production",
            release.release_id,
        )
        assert waiting.message == decision.summary
        production = views.why(db, config, "publisher", "production")["environments"]["production"]
        assert "waiting for promotion" in production["explanation"], production

        # Idle again without a person: nothing more happens, and the Decision is not repeated.
        run_until_idle(config, db_url, timeout=30)
        assert deployment_state(db, "publisher", "production", release.release_id) is None

        deployment_id = ops.promote("publisher", actor="release-manager")
        with pytest.raises(OperationError, match="already on its way to production"):
            ops.promote("publisher")  # a second click before any work must not queue it twice
        run_until_idle(config, db_url, timeout=60)
        assert deployment_state(db, "publisher", "production", release.release_id) == "succeeded"
        with db.read() as session:
            assert len(session.scalars(select(Event).where(Event.kind == "promotion.waiting")).all()) == 1
            created = session.scalars(
                select(Event).where(Event.kind == "deployment.created", Event.deployment_id == deployment_id)
            ).one()
        assert created.actor == "release-manager" and created.environment == "production"

        with pytest.raises(OperationError, match="nothing to promote"):
            ops.promote("publisher")
        with pytest.raises(OperationError, match="already runs"):
            ops.promote("publisher", to="production")
    finally:
        db.dispose()


@pytest.mark.timeout(120)
def test_a_wait_for_promotion_ends_when_its_release_no_longer_runs_healthy_before(tmp_path: Path, db_url: str) -> None:
    """Staging's release is left with health unknown (cancelled while checking): production no longer
    awaits it, why stops saying to promote it, and promote says why it refuses."""
    from sqlalchemy import update

    from conveyor.store.tables import Placement

    make_app_repo(tmp_path / "repos" / "publisher")
    config = load(write_config(tmp_path, CONFIG))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        release = ops.create_release("publisher")
        run_until_idle(config, db_url, timeout=60)
        (status,) = views.status(db, config, "publisher")
        assert status.environments["production"].awaiting_promotion == release.label
        with db.write() as session:
            session.execute(
                update(Placement)
                .where(Placement.app == "publisher", Placement.environment == "staging")
                .values(health="unknown")
            )
        (status,) = views.status(db, config, "publisher")
        assert status.environments["production"].awaiting_promotion is None
        production = views.why(db, config, "publisher", "production")["environments"]["production"]
        assert "conveyor promote" not in production["explanation"], production
        with pytest.raises(OperationError) as refused:
            ops.promote("publisher", to="production")
        assert str(refused.value).startswith(
            f"nothing to promote from staging: {release.label} runs there with health unknown"
        )
    finally:
        db.dispose()


@pytest.mark.timeout(120)
def test_why_says_a_release_awaits_promotion_before_what_would_hold_it_after(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "publisher")
    config = load(write_config(tmp_path, CONFIG))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        ops.create_release("publisher")
        run_until_idle(config, db_url, timeout=60)
        ops.freeze(None, "production", "year-end")
        production = views.why(db, config, "publisher", "production")["environments"]["production"]
        assert production["explanation"].startswith(f"waiting for promotion — manual tier: {REASON}")
        assert "; once promoted: " in production["explanation"] and "year-end" in production["explanation"]
    finally:
        db.dispose()
