"""``/metrics``: counted from the store at scrape time, so every serving process reports the same."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conveyor.clock import utc_now
from conveyor.store.tables import Hold, Outbox
from conveyor.web import create_app
from tests.web.conftest import Api


def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def unique_columns() -> dict[str, Any]:
    """Values for the outbox's required unique columns other than the ones this test sets."""
    return {"delivery_id": str(uuid.uuid4())} if "delivery_id" in Outbox.__table__.c else {}


def test_an_empty_store_reports_zeros(api: Api) -> None:
    metrics = scrape(api)
    assert metrics[("conveyor_deployments_total", (("state", "succeeded"),))] == 0
    assert metrics[("conveyor_steps", (("state", "queued"),))] == 0
    assert metrics[("conveyor_steps", (("state", "running"),))] == 0
    assert metrics[("conveyor_holds_active", ())] == 0
    assert metrics[("conveyor_outbox_backlog", ())] == 0
    assert not any(name.startswith("conveyor_step_duration_seconds") for name, _ in metrics)


def test_metrics_follow_the_store(blocked: Api) -> None:
    blocked.ok("/api/apps/api/releases")  # queued, not yet worked
    metrics = scrape(blocked)
    assert metrics[("conveyor_deployments_total", (("state", "succeeded"),))] == 1  # web in integration
    assert metrics[("conveyor_deployments_total", (("state", "failed"),))] == 1  # web in staging
    assert metrics[("conveyor_deployments_total", (("state", "pending"),))] == 1  # api in integration
    assert metrics[("conveyor_holds_active", ())] == 1
    deploys = metrics[("conveyor_step_duration_seconds_count", (("kind", "deploy"),))]
    assert deploys == 2  # integration succeeded, staging failed
    assert metrics[("conveyor_step_duration_seconds_bucket", (("kind", "deploy"), ("le", "+Inf")))] == deploys
    assert metrics[("conveyor_step_duration_seconds_bucket", (("kind", "deploy"), ("le", "0.1")))] <= deploys
    assert metrics[("conveyor_step_duration_seconds_sum", (("kind", "deploy"),))] > 0
    # what runs where: web in integration; its deploy failed in staging, so nothing runs there
    current = {labels: value for (name, labels), value in metrics.items() if name == "conveyor_current_release"}
    assert [(dict(labels)["app"], dict(labels)["environment"], dict(labels)["health"]) for labels in current] == [
        ("web", "integration", "healthy")
    ]
    assert list(current.values()) == [1.0]


def test_holds_whose_until_passed_and_pending_outbox_rows(api: Api) -> None:
    now = utc_now()
    with api.db.write() as session:
        session.add(Hold(kind="freeze", reason="over", actor="cli", since=now, until=now - timedelta(minutes=1)))
        session.add(Hold(kind="freeze", reason="on", actor="cli", since=now, until=now + timedelta(hours=1)))
    assert scrape(api)[("conveyor_holds_active", ())] == 1
    api.ok("/api/apps/web/releases")
    with api.db.write() as session:
        for state in ("pending", "delivered"):
            session.add(Outbox(event_id=1, notifier="chat", state=state, next_attempt_at=now, **unique_columns()))
    assert scrape(api)[("conveyor_outbox_backlog", ())] == 1


def test_two_apps_on_one_store_report_the_same_numbers(blocked: Api) -> None:
    other = TestClient(create_app(blocked.config, blocked.db))
    assert other.get("/metrics").text == blocked.get("/metrics").text
