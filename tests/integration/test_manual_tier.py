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
