"""A promotion whose deployment would start at once starts it in the same transaction, on SQLite and
PostgreSQL; when a hold comes between the plan and its apply, the deployment is created and waits.

Before, a success was promoted in one pass and the new deployment started in the next: a pass (a read
of the app again and a transaction) more for every hop of every release.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select

from conveyor.domain.decisions import Promote, Wait
from conveyor.domain.model import DeploymentState, Health, HoldKind
from conveyor.domain.planner import plan_next
from conveyor.domain.snapshot import AppPolicy, DeploymentView, Placement, ReleaseAt, Snapshot
from conveyor.engine.orchestrator import Orchestrator
from conveyor.store.database import Database
from conveyor.store.snapshot import load_holds
from conveyor.store.tables import Decision, Deployment, Event, Hold, Lock, Release, Step

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ENVS = ("integration", "staging", "production")
WEB = AppPolicy("web", "auto", None, locks={env: (f"app:web:{env}",) for env in ENVS}, checks={env: () for env in ENVS})


def _row(db: Database, table: type, **values: object) -> int:
    with db.write() as s:
        return int(s.execute(insert(table).values(**values).returning(table.id)).scalar_one())  # type: ignore[attr-defined]


def _passed_integration(db: Database) -> tuple[int, Snapshot]:
    """Release v1 of web, deployed and healthy in integration; the snapshot a pass reads then."""
    v1 = _row(db, Release, app="web", sha="1" * 40, label="v1", ref="main", created_at=T0, created_by="t")
    source = _row(
        db, Deployment, app="web", release_id=v1, environment="integration", state="succeeded", origin_key="release:1",
        queued_at=T0, updated_at=T0, created_by="t", summary="",
    )  # fmt: skip
    here = ReleaseAt(source, v1, "v1")
    snapshot = Snapshot(
        environments=ENVS,
        apps={"web": WEB},
        open_deployments=(),
        placements={("web", "integration"): Placement(here, Health.HEALTHY, here)},
        deployed_releases=frozenset({(v1, "integration")}),
        holds=(),
        locks={},
    )
    return v1, snapshot


def test_a_promotion_starts_its_deployment_in_the_same_transaction(db: Database) -> None:
    v1, snapshot = _passed_integration(db)
    [promote] = plan_next(snapshot, T0).intents
    assert isinstance(promote, Promote) and promote.then_start is not None

    assert Orchestrator(db, lambda: T0).apply_all([promote]) == [True]
    with db.read() as s:
        [d] = s.scalars(select(Deployment).where(Deployment.environment == "staging")).all()
        assert (d.release_id, d.state, d.started_at) == (v1, DeploymentState.DEPLOYING.value, T0)
        assert s.execute(select(Lock.name, Lock.deployment_id)).all() == [("app:web:staging", d.id)]
        assert s.execute(select(Step.kind, Step.state).where(Step.deployment_id == d.id)).all() == [
            ("deploy", "queued")
        ]
        decisions = s.execute(
            select(Decision.rule, Decision.deployment_id).where(Decision.environment == "staging").order_by(Decision.id)
        ).all()
        assert decisions == [("PromoteOnSuccess", None), ("StartWhenLocksFree", d.id)]  # why reads the start last
        kinds = s.scalars(select(Event.kind).where(Event.deployment_id == d.id).order_by(Event.id)).all()
        assert kinds == ["deployment.created", "deployment.started"]


def test_a_hold_raised_between_the_plan_and_its_apply_leaves_the_new_deployment_waiting(db: Database) -> None:
    v1, snapshot = _passed_integration(db)
    [promote] = plan_next(snapshot, T0).intents
    assert isinstance(promote, Promote) and promote.then_start is not None
    # an operator freezes staging after the planner read its snapshot
    _row(
        db,
        Hold,
        kind=HoldKind.FREEZE.value,
        app=None,
        environment="staging",
        reason="release day",
        actor="cli:op",
        since=T0,
    )

    assert Orchestrator(db, lambda: T0).apply_all([promote]) == [True]  # the promotion stands
    with db.read() as s:
        [d] = s.scalars(select(Deployment).where(Deployment.environment == "staging")).all()
        assert (d.state, d.started_at) == (DeploymentState.PENDING.value, None)
        assert s.scalars(select(Lock)).all() == []
        assert s.scalars(select(Step).where(Step.deployment_id == d.id)).all() == []
        holds = load_holds(s)

    after = Snapshot(
        environments=ENVS,
        apps={"web": WEB},
        open_deployments=(DeploymentView(d.id, "web", "staging", v1, "v1", DeploymentState.PENDING, T0),),
        placements=snapshot.placements,
        deployed_releases=frozenset({(v1, "integration"), (v1, "staging")}),
        holds=holds,
        locks={},
    )
    [wait] = plan_next(after, T0).intents  # the next pass says why it waits
    assert isinstance(wait, Wait) and wait.decision is not None
    assert (wait.deployment_id, wait.decision.rule) == (d.id, "HoldWhileFrozen")
