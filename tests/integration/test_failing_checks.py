"""One check fails while its siblings still measure: they are stopped, not waited for, and the deployment
fails on the first failure at once (a release known bad runs no longer than that)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Deployment, Event, Step
from tests.integration.harness import load, make_app_repo, run_until_idle, write_config

CONFIG = """\
environments: [integration, production]
teams: {publishing: {notify: []}}
defaults:
  deploy: {driver: fake, duration: 0.05}
  checks:
    - {name: smoke, type: fake, phases: [fail], count: 1}
    - {name: soak, type: fake, duration: 60, count: 1}
apps:
  web: {repo: ./repos/web, team: publishing}
"""


@pytest.mark.timeout(120)
def test_a_failed_check_stops_its_running_siblings_and_fails_the_deployment_at_once(
    tmp_path: Path, db_url: str
) -> None:
    make_app_repo(tmp_path / "repos" / "web")
    config = load(write_config(tmp_path, CONFIG))
    db = Database(db_url)
    try:
        Operations(config, db).create_release("web")
        began = time.monotonic()
        run_until_idle(config, db_url, timeout=90)
        assert time.monotonic() - began < 20  # not the 60 s the soak check would have measured
        with db.read() as session:
            (d,) = session.scalars(select(Deployment))
            steps = {s.name: (s.state, s.outcome) for s in session.scalars(select(Step).where(Step.kind == "check"))}
            stopping = session.scalars(select(Event).where(Event.kind == "step.stopping")).all()
        assert (d.environment, d.state) == ("integration", "failed")
        assert d.summary.startswith("release ") and "failed check 'smoke' in integration" in d.summary
        assert steps["smoke"][0] == "failed"
        assert steps["soak"][0] == "cancelled", steps
        assert [e.message for e in stopping] == ["a sibling check failed"]
    finally:
        db.dispose()
