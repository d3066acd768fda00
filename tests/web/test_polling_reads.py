"""What polling saw is readable: ``why`` (API and CLI) says when the remote was last polled and what it
answered, and ``/metrics`` counts failed polls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conveyor.store.polls import record_turn, take_turn
from tests.web.conftest import API_CONFIG, Api, make_api
from tests.web.test_metrics import scrape

POLLED = API_CONFIG.replace(
    "web: {repo: ./repos/web, team: publishing, groups: [router]}",
    "web: {repo: ./repos/web, team: publishing, groups: [router], poll: 30s}",
)
AT = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)


@pytest.fixture
def polled(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", POLLED)


def test_before_the_first_poll(polled: Api) -> None:
    polling = polled.get("/api/apps/web/why").json()["polling"]
    assert polling["every"] == 30 and polling["polled_at"] is None
    assert polling["summary"].endswith("every 30s; not polled yet (no worker running?)")
    assert polled.get("/api/apps/api/why").json()["polling"] is None  # api does not poll
    metrics = scrape(polled)
    assert metrics[("conveyor_poll_failures_total", (("app", "web"),))] == 0
    assert metrics[("conveyor_poll_failing", (("app", "web"),))] == 0
    assert ("conveyor_poll_failing", (("app", "api"),)) not in metrics


def test_a_failing_remote_and_its_recovery(polled: Api) -> None:
    db = polled.db
    for minute in range(2):
        take_turn(db, "web", AT + timedelta(minutes=minute), 30, "worker")
        record_turn(db, "web", AT + timedelta(minutes=minute), head=None, error="fatal: unable to connect")
    polling = polled.get("/api/apps/web/why").json()["polling"]
    assert polling["failing_since"] == AT.isoformat() and polling["failures"] == 2
    assert "fails since 2026-11-29 09:30:00 UTC: fatal: unable to connect" in polling["summary"]
    metrics = scrape(polled)
    assert metrics[("conveyor_poll_failures_total", (("app", "web"),))] == 2
    assert metrics[("conveyor_poll_failing", (("app", "web"),))] == 1
    shown = polled.cli("why", "web")
    assert "fatal: unable to connect" in shown.output, shown.output

    sha = polled.project.head("web")
    record_turn(db, "web", AT + timedelta(minutes=2), head=sha, error=None)
    polling = polled.get("/api/apps/web/why").json()["polling"]
    assert polling["error"] is None and polling["head"] == sha and polling["release"] is None
    assert f"main is at {sha[:12]} (not released yet)" in polling["summary"]
    metrics = scrape(polled)
    assert metrics[("conveyor_poll_failing", (("app", "web"),))] == 0
    assert (
        metrics[("conveyor_poll_last_answer_timestamp_seconds", (("app", "web"),))]
        == (AT + timedelta(minutes=2)).timestamp()
    )
