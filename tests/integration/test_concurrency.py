"""Steps run in parallel: 30 independent apps with a 1 s fake deploy finish in about 1 s, not 30.

One environment, no checks, concurrency 64: every deploy can run at once. The bound asserted is
generous for a noisy machine; the measured wall time is printed (``pytest -s``).
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest

from conveyor.engine import orchestrator
from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from tests.integration.harness import (
    any_overlap,
    attempts,
    deployments,
    load,
    make_app_repo,
    run_until_idle,
    write_config,
)

APPS = 30
DEPLOY_SECONDS = 1.0


def config_text() -> str:
    apps = "\n".join(f"  app{i:02d}: {{repo: ./repos/shared, team: publishing}}" for i in range(APPS))
    return f"""\
environments: [production]
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: fake, duration: {DEPLOY_SECONDS}}}
  checks: []
apps:
{apps}
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_thirty_independent_deploys_run_at_once(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "shared")
    config = load(write_config(tmp_path, config_text()))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        for app in config.apps:
            ops.create_release(app)

        wall = run_until_idle(config, db_url, concurrency=64, timeout=60)
        print(
            f"\n{APPS} deploys of {DEPLOY_SECONDS:g}s with concurrency 64: {wall:.2f}s wall "
            f"(serial would be {APPS * DEPLOY_SECONDS:g}s)"
        )

        done = deployments(db)
        assert len(done) == APPS and {d.state for d, _ in done} == {"succeeded"}
        rows = attempts(db)
        assert len(rows) == APPS and {a.outcome for a in rows} == {"succeeded"}
        assert any_overlap((a.started_at, a.finished_at) for a in rows if a.finished_at)
        started = [a.started_at for a in rows]
        finished = [a.finished_at for a in rows if a.finished_at]
        span = (max(finished) - min(started)).total_seconds()
        print(f"first step start to last step end: {span:.2f}s")
        assert span < 4 * DEPLOY_SECONDS, f"steps ran {span:.2f}s end to end: not in parallel"
        assert wall < 8.0, f"{APPS} parallel deploys took {wall:.2f}s"
    finally:
        db.dispose()


@pytest.mark.timeout(120)
def test_the_heap_from_before_the_loop_is_frozen_while_it_runs(tmp_path: Path, db_url: str) -> None:
    """The collector's full passes skip what the loop started with (config, plugins, modules), and the
    process gets it back when the loop ends."""
    make_app_repo(tmp_path / "repos" / "shared")
    config = load(write_config(tmp_path, config_text().replace(f"duration: {DEPLOY_SECONDS}", "duration: 0")))
    db = Database(db_url)
    frozen_while_running: list[int] = []
    try:
        Operations(config, db).create_release("app00")
        conductor = Conductor(
            config, db, poll_interval=0.02, on_step=lambda *_: frozen_while_running.append(gc.get_freeze_count())
        )
        conductor.run(threading.Event(), exit_when_idle=True)
        assert frozen_while_running and all(count > 0 for count in frozen_while_running)
        assert gc.get_freeze_count() == 0
    finally:
        db.dispose()


@pytest.mark.timeout(120)
def test_a_large_pass_claims_each_committed_batch_before_applying_the_next(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that starts more deployments than one transaction holds begins the first ones' steps at
    once, not after the whole pass: each batch of starts is committed, then claimed, then the next one
    applied. Their ends then come back spread out, and the next pass over them is smaller."""
    monkeypatch.setattr(orchestrator, "BATCH_SIZE", 4)
    make_app_repo(tmp_path / "repos" / "shared")
    config = load(write_config(tmp_path, config_text().replace(f"duration: {DEPLOY_SECONDS}", "duration: 30")))
    db = Database(db_url)
    conductor = Conductor(config, db, poll_interval=0.02, grace_seconds=0)  # stopped at the end, not awaited
    order: list[tuple[str, int]] = []
    apply_run, claim = conductor.orchestrator._apply_run, conductor.leases.claim

    def applying(session: Any, group: Any, now: Any) -> list[bool]:
        order.append(("applied", len(group)))
        return apply_run(session, group, now)

    def claiming(limit: int) -> list[Any]:
        claimed = claim(limit)
        if claimed:
            order.append(("claimed", len(claimed)))
        return claimed

    monkeypatch.setattr(conductor.orchestrator, "_apply_run", applying)
    monkeypatch.setattr(conductor.leases, "claim", claiming)
    try:
        ops = Operations(config, db)
        for app in config.apps:
            ops.create_release(app)
        assert conductor.plan(claim=True)
        # 30 starts in batches of 4: every batch of starts is claimed before the next is applied
        assert order == [("applied", 4), ("claimed", 4)] * 7 + [("applied", 2), ("claimed", 2)]
        assert len(conductor._running) == APPS
    finally:
        conductor.shutdown()
        db.dispose()
