"""A production window in Europe/London, end to end with a fixed clock, on SQLite and PostgreSQL.

A release made on Saturday 28 March 2026 flows through integration and staging and waits for
production, whose window is Monday to Friday 09:30-17:00 London time; ``why`` says when it opens. The
clocks go forward on Sunday 29 March, so Monday's 09:30 is 08:30 UTC: a minute before, production still
waits; a minute after, it deploys. A ``--force`` deployment passes a closed window at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conveyor import views
from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Release
from tests.integration.harness import deployment_state, load, make_app_repo, write_config

CONFIG = """\
environments: [integration, staging, production]
teams: {publishing: {notify: []}}
defaults:
  deploy: {driver: fake, duration: 0.02}
apps:
  web: {repo: ./repos/web, team: publishing}
  api: {repo: ./repos/api, team: publishing}
windows:
  production:
    timezone: Europe/London
    hours: {mon-fri: "09:30-17:00"}
    holidays: GB-ENG
"""


def clock_from(start: datetime) -> Callable[[], datetime]:
    """A clock that starts at ``start`` and runs at the wall clock's pace (leases need time to pass)."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


@pytest.mark.slow
def test_production_waits_for_its_window_across_the_clock_change(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "web")
    make_app_repo(tmp_path / "repos" / "api")
    config = load(write_config(tmp_path, CONFIG))
    db = Database(db_url)
    saturday = clock_from(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))

    def run(clock: Callable[[], datetime]) -> None:
        Conductor(config, db, clock=clock, poll_interval=0.02, grace_seconds=5).run(
            threading.Event(), exit_when_idle=True
        )

    try:
        web = Operations(config, db, saturday).create_release("web").release_id
        run(saturday)
        assert [deployment_state(db, "web", env, web) for env in config.environments] == [
            "succeeded",
            "succeeded",
            "waiting",
        ]
        production = views.why(db, config, "web", "production", now=saturday())["environments"]["production"]
        assert production["explanation"] == "waiting for the production window (opens Mon 09:30 Europe/London)"
        assert [o["kind"] for o in production["obstacles"]] == ["window"]

        # break-glass passes the closed window at once
        api = Operations(config, db, saturday).create_release("api").release_id
        run(saturday)
        assert deployment_state(db, "api", "production", api) == "waiting"
        forced = Operations(config, db, saturday).deploy(
            "api", api_label(db, api), "production", force=True, reason="hotfix"
        )
        run(saturday)
        assert deployment_state(db, "api", "production", api) == "succeeded", forced

        run(clock_from(datetime(2026, 3, 30, 8, 29, tzinfo=UTC)))  # 09:29 BST
        assert deployment_state(db, "web", "production", web) == "waiting"
        run(clock_from(datetime(2026, 3, 30, 8, 31, tzinfo=UTC)))  # 09:31 BST
        assert deployment_state(db, "web", "production", web) == "succeeded"
    finally:
        db.dispose()


def api_label(db: Database, release_id: int) -> str:
    with db.read() as session:
        release = session.get(Release, release_id)
        assert release is not None
        return release.label
