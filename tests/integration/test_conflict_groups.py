"""Conflict groups serialise deployments that share a lock, and only those (invariant 1).

Six apps: ``router`` holds web and api, ``batch`` holds jobs and reports, search and mail stand alone.
Every deploy takes 0.5 s (fake) under concurrency 16. From the recorded times of deployments and of
step attempts: no two deployments sharing a lock name (``app:<app>:<env>`` or ``group:<g>:<env>``) ever
overlapped, independent apps did overlap, and the whole run took well under the serial sum.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.operations import Operations
from conveyor.store.database import Database
from tests.integration.harness import (
    any_overlap,
    attempts,
    deployments,
    load,
    lock_intervals,
    make_app_repo,
    overlaps,
    run_until_idle,
    write_config,
)

DEPLOY_SECONDS = 0.5
ENVS = ("integration", "staging", "production")
CONFIG = f"""\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
groups:
  router: {{description: shared router}}
  batch: {{description: shared batch queue}}
defaults:
  deploy: {{driver: fake, duration: {DEPLOY_SECONDS}}}
  checks: [{{name: smoke, type: fake, count: 1}}]
apps:
  web: {{repo: ./repos/shared, team: publishing, groups: [router]}}
  api: {{repo: ./repos/shared, team: publishing, groups: [router]}}
  jobs: {{repo: ./repos/shared, team: publishing, groups: [batch]}}
  reports: {{repo: ./repos/shared, team: publishing, groups: [batch]}}
  search: {{repo: ./repos/shared, team: publishing}}
  mail: {{repo: ./repos/shared, team: publishing}}
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_deployments_sharing_a_lock_never_overlap(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "shared")
    config = load(write_config(tmp_path, CONFIG))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        for app in config.apps:
            ops.create_release(app)
        wall = run_until_idle(config, db_url, concurrency=16, timeout=90)

        done = deployments(db)
        assert len(done) == len(config.apps) * len(ENVS)
        assert {d.state for d, _ in done} == {"succeeded"}, [(d.app, d.environment, d.state) for d, _ in done]

        by_deployment, by_attempt = lock_intervals(config, db)
        assert "group:router:staging" in by_deployment and len(by_deployment["group:router:staging"]) == 2
        assert overlaps(by_deployment) == []
        assert overlaps(by_attempt) == []

        rows = attempts(db)
        deploys = {(a.app, a.environment): a for a in rows if a.kind == "deploy"}
        for env in ENVS:  # independent apps ran side by side: concurrency is real
            pair = [deploys["search", env], deploys["mail", env]]
            assert any_overlap((a.started_at, a.finished_at) for a in pair if a.finished_at), env

        start = min(d.started_at for d, _ in done if d.started_at)
        end = max(d.finished_at for d, _ in done if d.finished_at)
        makespan = (end - start).total_seconds()
        serial = sum((a.finished_at - a.started_at).total_seconds() for a in rows if a.finished_at is not None)
        print(f"\nmakespan {makespan:.2f}s (wall {wall:.2f}s) vs serial sum of step attempts {serial:.2f}s")
        assert makespan < 0.6 * serial, f"makespan {makespan:.2f}s is not well below serial {serial:.2f}s"
    finally:
        db.dispose()
