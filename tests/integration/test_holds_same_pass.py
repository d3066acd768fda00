"""A block recorded in the same pass as a start stops that start, on SQLite and PostgreSQL.

The planner sees a snapshot from before the pass: release v2 failing its check in staging, and release
v1 of the same app queued for production with nothing holding it. It plans both the failure (which
blocks staging and every later environment) and the start in production. The orchestrator applies the
failure first and the start re-reads the holds in its own transaction, so production does not start;
the next pass records why it waits.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time

from sqlalchemy import insert, select

from conveyor.domain.decisions import Fail, Start, Wait
from conveyor.domain.holds import HoldPolicy, Window
from conveyor.domain.model import DeploymentState, HoldKind, StepKind, StepState
from conveyor.domain.planner import plan_next
from conveyor.domain.snapshot import AppPolicy, DeploymentView, Snapshot, StepView
from conveyor.engine.orchestrator import Orchestrator
from conveyor.store.database import Database
from conveyor.store.snapshot import load_holds
from conveyor.store.tables import Deployment, Hold, Lock, Release, Step

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ENVS = ("integration", "staging", "production")
WEB = AppPolicy(
    "web",
    "auto",
    None,
    locks={env: (f"app:web:{env}",) for env in ENVS},
    checks={env: ("smoke",) for env in ENVS},
)


def _row(db: Database, table: type, **values: object) -> int:
    with db.write() as s:
        return int(s.execute(insert(table).values(**values).returning(table.id)).scalar_one())  # type: ignore[attr-defined]


def test_a_block_recorded_in_the_same_pass_stops_the_start_in_a_later_environment(db: Database) -> None:
    v1 = _row(db, Release, app="web", sha="1" * 40, label="v1", ref="main", created_at=T0, created_by="t")
    v2 = _row(db, Release, app="web", sha="2" * 40, label="v2", ref="main", created_at=T0, created_by="t")
    common = {"app": "web", "queued_at": T0, "updated_at": T0, "created_by": "t", "summary": ""}
    failing = _row(
        db, Deployment, release_id=v2, environment="staging", state="verifying", origin_key="auto:s", **common
    )
    step = _row(db, Step, deployment_id=failing, kind="check", name="smoke", state="failed", due_at=T0, outcome="500")
    with db.write() as s:
        s.add(Lock(name="app:web:staging", deployment_id=failing, acquired_at=T0))
    queued = _row(db, Deployment, release_id=v1, environment="production", state="pending", origin_key=None, **common)

    snap = Snapshot(
        environments=ENVS,
        apps={"web": WEB},
        open_deployments=(
            DeploymentView(
                failing, "web", "staging", v2, "v2", DeploymentState.VERIFYING, T0,
                (StepView(step, StepKind.CHECK, "smoke", StepState.FAILED, "500"),),
            ),
            DeploymentView(queued, "web", "production", v1, "v1", DeploymentState.PENDING, T0, explicit=True),
        ),
        placements={},
        deployed_releases=frozenset(),
        holds=(),
        locks={"app:web:staging": failing},
    )  # fmt: skip
    plan = plan_next(snap, T0)
    assert [type(i) for i in plan.intents] == [Fail, Start]  # both in one pass, from the same snapshot

    orchestrator = Orchestrator(db, lambda: T0)
    assert orchestrator.apply_all(plan.intents) == [True, False]
    with db.read() as s:
        states = dict(s.execute(select(Deployment.id, Deployment.state)).all())
        assert states == {failing: "failed", queued: "pending"}
        assert s.scalars(select(Step).where(Step.deployment_id == queued)).all() == []
        assert s.scalars(select(Lock)).all() == []
        [block] = s.scalars(select(Hold)).all()
        assert (block.kind, block.environment, block.release_id) == (HoldKind.BLOCK.value, "staging", v2)
        holds = load_holds(s)

    after = Snapshot(
        environments=ENVS,
        apps={"web": WEB},
        open_deployments=(
            DeploymentView(queued, "web", "production", v1, "v1", DeploymentState.PENDING, T0, explicit=True),
        ),
        placements={},
        deployed_releases=frozenset(),
        holds=holds,
        locks={},
    )
    [wait] = plan_next(after, T0).intents
    assert isinstance(wait, Wait) and wait.decision is not None
    assert wait.decision.rule == "HoldWhileBlocked"
    assert "blocked in staging" in wait.decision.summary


def test_a_window_closed_since_the_plan_stops_the_start_with_no_hold_recorded(db: Database) -> None:
    """With no hold at all, the start still re-checks its environment's window in its own transaction."""
    v1 = _row(db, Release, app="web", sha="1" * 40, label="v1", ref="main", created_at=T0, created_by="t")
    common = {"app": "web", "queued_at": T0, "updated_at": T0, "created_by": "t", "summary": ""}
    queued = _row(db, Deployment, release_id=v1, environment="production", state="pending", origin_key="a", **common)
    closed = Window("production", "UTC", hours=((0, time(9), time(10)),))  # Mondays 09:00-10:00; T0 is Monday noon
    policy = HoldPolicy(ENVS, {"production": closed})
    start = Start(None, deployment_id=queued, locks=("app:web:production",), policy=policy)
    orchestrator = Orchestrator(db, lambda: T0)
    assert orchestrator.apply_all([start]) == [False]
    with db.read() as s:
        assert s.scalar(select(Deployment.state).where(Deployment.id == queued)) == "pending"
    assert orchestrator.apply_all([replace(start, policy=HoldPolicy(ENVS))]) == [True]  # no window there
    with db.read() as s:
        assert s.scalar(select(Deployment.state).where(Deployment.id == queued)) == "deploying"
        assert s.scalars(select(Hold)).all() == []
