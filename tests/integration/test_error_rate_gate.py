"""The ``error_rate`` check in a real pipeline, with counts read from a Sentry stand-in on 127.0.0.1.

Release 1 reaches staging and production (its first deploy has nothing to compare with: ``on_too_few:
pass``). Release 2 throws errors twenty times as fast once deployed: its staging check fails, production
keeps release 1, and ``conveyor why`` shows the counts, the windows' lengths and the p-value. The
stand-in records what was asked: the baseline of release 2 is release 1's errors, counted from no
earlier than release 1's deploy finished, up to release 2's deploy start; the after window starts no
earlier than release 2's deploy finished. Those moments come from the step rows, through the executor.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor import views
from conveyor.config import load_config
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Deployment, Step
from tests.integration.harness import add_commit, deployment_state, make_app_repo, run_until_idle, write_config
from tests.sentry_standin import EventsQuery, SentryStandIn

CONFIG = """\
environments: [staging, production]
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: fake, duration: 0.05}}
apps:
  web:
    repo: ./repos/web
    team: publishing
    environments:
      staging:
        checks:
          - name: errors
            type: error_rate
            initial_delay: 2.1
            window: 1s
            baseline: 1h
            on_too_few: pass
            source: sentry
            release_prefix: "{{app}}@"
            sentry: {{url: "{url}", org: acme, project: "{{app}}", token: "${{SENTRY_TOKEN}}", timeout: 5s}}
"""


@pytest.fixture
def standin() -> Iterator[SentryStandIn]:
    s = SentryStandIn().start()
    yield s
    s.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_release_that_throws_errors_is_failed_in_staging(tmp_path: Path, db_url: str, standin: SentryStandIn) -> None:
    repo = tmp_path / "repos" / "web"
    shas = [make_app_repo(repo, {"app.txt": "1\n"}, "release one")]
    shas.append(add_commit(repo, {"app.txt": "2\n"}, "release two: throws"))
    path = write_config(tmp_path, CONFIG.format(url=standin.url))
    config = load_config(path, {"SENTRY_TOKEN": standin.token})
    assert standin.token in config.secrets
    db = Database(db_url)
    ops = Operations(config, db)
    rates: dict[str, float] = {}  # errors per second of each release

    def count(q: EventsQuery) -> int:
        assert q.project == "web" and (q.release or "").startswith("web@"), q
        return round(rates.get((q.release or "").removeprefix("web@"), 0.0) * (q.end - q.start).total_seconds())

    standin.count_errors = count
    try:
        one = ops.create_release("web", shas[0])
        rates[one.label] = 20.0
        run_until_idle(config, db_url, timeout=60)
        assert deployment_state(db, "web", "production", one.release_id) == "succeeded"

        two = ops.create_release("web", shas[1])
        rates[two.label] = 400.0
        run_until_idle(config, db_url, timeout=60)
        assert deployment_state(db, "web", "staging", two.release_id) == "failed"
        assert deployment_state(db, "web", "production", two.release_id) is None, "an erroring release was promoted"

        why = views.why(db, config, "web")
        staging = why["environments"]["staging"]
        assert staging["failed_step"]["name"] == "errors"
        [measurement] = staging["failed_step"]["measurements"]
        assert measurement["phase"] == "fail"
        assert "error rate significantly above 2× baseline" in measurement["message"]
        assert "errors in 1s after the deploy" in measurement["message"] and "p = " in measurement["message"]
        assert why["environments"]["production"]["live"] == one.label

        after, before = standin.queries[-2:]
        assert (after.release, before.release) == (f"web@{two.label}", f"web@{one.label}")
        with db.read() as session:
            deploys = {
                d.release_id: s
                for d, s in session.execute(
                    select(Deployment, Step)
                    .join(Step, Step.deployment_id == Deployment.id)
                    .where(Deployment.environment == "staging", Step.kind == "deploy")
                )
            }
        first, second = deploys[one.release_id], deploys[two.release_id]
        assert first.finished_at is not None and second.started_at is not None and second.finished_at is not None
        assert first.finished_at <= before.start < first.finished_at + timedelta(seconds=1)
        assert second.started_at - timedelta(seconds=1) < before.end <= second.started_at
        assert after.start >= second.finished_at  # the last `window` seconds, all after the deploy
    finally:
        db.dispose()
