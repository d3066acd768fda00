"""Scale-out smoke: two conductors with different owners share one database (PostgreSQL, the
multi-machine setup; SQLite too, which several processes on one machine may share).

20 apps (two conflict groups of four, twelve independent), a 0.3 s fake deploy and a quick check in every
environment, each conductor limited to 10 steps at once so that neither can take all the work. Every step
runs exactly once (claims use SKIP LOCKED, planner passes an advisory lock), both conductors do real work,
every app reaches production, and no two deployments sharing a lock ever overlap.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conveyor.operations import Operations
from conveyor.store.database import Database
from tests.integration.harness import (
    ConductorThread,
    attempts,
    deployments,
    load,
    lock_intervals,
    make_app_repo,
    overlaps,
    write_config,
)

APPS = 20


def config_text() -> str:
    def groups(i: int) -> str:
        return "[router]" if i < 4 else "[batch]" if i < 8 else "[]"

    apps = "\n".join(
        f"  app{i:02d}: {{repo: ./repos/shared, team: publishing, groups: {groups(i)}}}" for i in range(APPS)
    )
    return f"""\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
groups: [router, batch]
defaults:
  deploy: {{driver: fake, duration: 0.3}}
  checks: [{{name: smoke, type: fake, count: 1}}]
apps:
{apps}
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_conductors_share_the_work_without_running_a_step_twice(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "shared")
    config = load(write_config(tmp_path, config_text()))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        for app in config.apps:
            ops.create_release(app)
        a = ConductorThread(config, db_url, concurrency=10, owner="conductor-a")
        b = ConductorThread(config, db_url, concurrency=10, owner="conductor-b")
        a.start()
        b.start()
        wall = max(a.join(90), b.join(90))
        print(f"\n{APPS} apps x 3 environments on two conductors: {wall:.2f}s")

        done = deployments(db)
        assert len(done) == APPS * 3 and {d.state for d, _ in done} == {"succeeded"}
        assert {d.app for d, _ in done if d.environment == "production"} == set(config.apps)

        rows = attempts(db)
        per_step = Counter(r.step_id for r in rows)
        assert set(per_step.values()) == {1}, f"steps run more than once: {per_step.most_common(3)}"
        assert {r.outcome for r in rows} == {"succeeded"} and {r.attempt for r in rows} == {1}
        owners = Counter(r.owner for r in rows)
        print(f"step attempts per conductor: {dict(owners)}")
        assert set(owners) == {"conductor-a", "conductor-b"}, owners

        by_deployment, by_attempt = lock_intervals(config, db)
        assert overlaps(by_deployment) == []
        assert overlaps(by_attempt) == []
    finally:
        db.dispose()
