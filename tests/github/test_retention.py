"""The GitHub intake's store is pruned after ``github.retention``: finished deliveries (each holds GitHub's
whole body) and CI results no open candidate waits on. Pending deliveries, the results an open candidate
is judged on, and candidates themselves are kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from conveyor.clock import utc_now
from conveyor.config import load_config
from conveyor.config.errors import ConfigError
from conveyor.github.retention import GitHubRetention
from conveyor.store.tables import Candidate, CiResult, GitHubDelivery
from tests.github.conftest import ENVIRON, Hooked, hooked
from tests.github.test_intake_rules import CONFIG, push

OLD = timedelta(days=15)  # past the default retention of 14 days


@pytest.fixture
def hook(tmp_path: Path, db_url: str) -> Iterator[Hooked]:
    yield from hooked(tmp_path, db_url, CONFIG)


def _candidate(sha: str, state: str) -> Candidate:
    now = utc_now() - OLD
    return Candidate(app="web", sha=sha, branch="main", state=state, created_at=now, updated_at=now)


def _result(sha: str, age: timedelta, reported: timedelta | None = None) -> CiResult:
    """Received ``age`` ago, with GitHub's own time for it ``reported`` ago (default: the same)."""
    received = utc_now() - age
    at = utc_now() - reported if reported is not None else received
    return CiResult(
        app="web", sha=sha, name="test", state="success", source="check_run", reported_at=at, received_at=received
    )


def test_old_finished_deliveries_and_unneeded_ci_results_are_pruned(hook: Hooked) -> None:
    for n in range(5):
        assert hook.post("push", push(f"{n + 1}" * 40, ["services/web/a.py"])).status_code == 202
    hook.work()
    hook.post("push", push("9" * 40, ["services/web/b.py"]), delivery="still-pending")
    with hook.db.write() as session:
        ids = list(session.scalars(select(GitHubDelivery.id).order_by(GitHubDelivery.id)))
        # four finished long ago, one finished lately; the pending one was received long ago too
        session.execute(
            update(GitHubDelivery).where(GitHubDelivery.id.in_(ids[:4])).values(finished_at=utc_now() - OLD)
        )
        session.execute(
            update(GitHubDelivery)
            .where(GitHubDelivery.delivery_id == "still-pending")
            .values(received_at=utc_now() - OLD)
        )
        session.add_all([_candidate("a" * 40, "waiting"), _candidate("b" * 40, "released")])
        session.add_all(
            [
                _result("a" * 40, OLD),  # an open candidate is judged on it: kept
                _result("b" * 40, OLD),  # its candidate was released (and keeps the result in its row)
                _result("c" * 40, OLD),  # no candidate: a pull request's commit
                _result("d" * 40, timedelta(days=1)),  # recent
                # received lately, though GitHub dates it long ago (a redelivery, a skewed clock): kept
                _result("e" * 40, timedelta(minutes=5), reported=timedelta(days=2000)),
            ]
        )

    GitHubRetention(hook.config, hook.db, batch=2)()  # several batches in one run

    with hook.db.read() as session:
        left = list(session.scalars(select(GitHubDelivery).order_by(GitHubDelivery.id)))
        results = sorted(r.sha[0] for r in session.scalars(select(CiResult)))
        candidates = sorted(c.sha[0] for c in session.scalars(select(Candidate)))
    assert [d.id for d in left] == [ids[4], ids[5]]
    assert [d.state for d in left] == ["done", "pending"]
    assert results == ["a", "d", "e"]
    assert {"a", "b"} <= set(candidates)  # candidates stay: they are the history of each push


def test_retention_is_configurable_and_at_least_an_hour(tmp_path: Path, db_url: str) -> None:
    text = CONFIG.replace("  webhook_secret:", "  retention: 2d\n  webhook_secret:")
    hook = next(hooked(tmp_path, db_url, text))
    assert hook.config.github is not None and hook.config.github.retention == 2 * 86400
    hook.db.dispose()
    (tmp_path / "short.yaml").write_text(CONFIG.replace("  webhook_secret:", "  retention: 10m\n  webhook_secret:"))
    with pytest.raises(ConfigError, match=r"short.yaml:5:\d+: .*retention.*must be at least 1h"):
        load_config(tmp_path / "short.yaml", ENVIRON)
