"""The latest decision about no deployment per place (``standing_decisions``, revision 0014), on SQLite and
PostgreSQL: kept as decisions are recorded, filled from the history on upgrade, and read by place, so a
planner pass does not read every promotion ever decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import func, insert, select

from conveyor.domain.decisions import Decision as DecisionRecord
from conveyor.domain.decisions import Verdict
from conveyor.store.database import Database
from conveyor.store.events import latest_fingerprints, record_decisions
from conveyor.store.migrate import _alembic_config, upgrade
from conveyor.store.tables import Decision, StandingDecision

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _decision(app: str, environment: str, summary: str, deployment_id: int | None = None) -> DecisionRecord:
    return DecisionRecord(app, environment, Verdict.PROCEED, "PromoteOnSuccess", summary, deployment_id=deployment_id)


def test_the_latest_decision_about_no_deployment_stands_for_its_place(db: Database) -> None:
    first, second, other = (
        _decision("shop", "staging", "v1"),
        _decision("shop", "staging", "v2"),
        _decision("shop", "production", "v1"),
    )
    with db.write() as session:
        record_decisions(session, [first, other], T0)
    with db.write() as session:
        record_decisions(session, [second, _decision("shop", "staging", "v3"), _decision("shop", "staging", "v2")], T0)
    with db.read() as session:
        assert latest_fingerprints(session, [], ["shop"]) == {
            ("shop", "staging", None): second.fingerprint,  # the last of a batch wins, as the last id did
            ("shop", "production", None): other.fingerprint,
        }
        assert latest_fingerprints(session, [], ["cart"]) == {}
        assert latest_fingerprints(session, [], []) == {}
        assert set(latest_fingerprints(session, [])) == {("shop", "staging", None), ("shop", "production", None)}
        # every decision is still in the history; one row per place stands
        assert session.scalar(select(func.count()).select_from(Decision)) == 5
        assert session.scalar(select(func.count()).select_from(StandingDecision)) == 2


def test_upgrade_fills_standing_decisions_from_the_history(db: Database) -> None:
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0013")
    rows = [
        ("shop", "staging", None, "old", 0),
        ("shop", "staging", None, "newest", 2),
        ("shop", "production", None, "only", 1),
        ("cart", "staging", None, "cart", 3),
    ]
    with db.write() as session:
        for app, environment, deployment_id, fingerprint, minutes in rows:
            session.execute(
                insert(Decision).values(
                    app=app,
                    environment=environment,
                    deployment_id=deployment_id,
                    verdict="proceed",
                    rule="PromoteOnSuccess",
                    summary=fingerprint,
                    fingerprint=fingerprint,
                    at=T0 + timedelta(minutes=minutes),
                )
            )
    upgrade(db)
    with db.read() as session:
        standing = {(s.app, s.environment): (s.fingerprint, s.at) for s in session.scalars(select(StandingDecision))}
    assert standing == {
        ("shop", "staging"): ("newest", T0 + timedelta(minutes=2)),
        ("shop", "production"): ("only", T0 + timedelta(minutes=1)),
        ("cart", "staging"): ("cart", T0 + timedelta(minutes=3)),
    }
