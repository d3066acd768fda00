"""``/metrics``: counted from the store at scrape time, so every serving process reports the same."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conveyor.clock import utc_now
from conveyor.domain.model import HoldKind
from conveyor.store.durations import count_ended
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
    assert metrics[("conveyor_notifications_pending", ())] == 0
    assert metrics[("conveyor_notifications_failed_total", ())] == 0
    assert not any(name.startswith("conveyor_step_duration_seconds") for name, _ in metrics)
    assert not any(name.startswith("conveyor_deployment_duration_seconds") for name, _ in metrics)
    web_production = (("app", "web"), ("environment", "production"))
    assert metrics[("conveyor_place_state", (*web_production, ("state", "none")))] == 1
    assert (
        metrics[("conveyor_place_health", (("app", "web"), ("environment", "production"), ("health", "unknown")))] == 1
    )


def test_metrics_follow_the_store(blocked: Api) -> None:
    blocked.ok("/api/apps/api/releases")  # queued, not yet worked
    metrics = scrape(blocked)
    assert metrics[("conveyor_deployments_total", (("state", "succeeded"),))] == 1  # web in integration
    assert metrics[("conveyor_deployments_total", (("state", "failed"),))] == 1  # web in staging
    assert metrics[("conveyor_deployments_in_flight", (("state", "pending"),))] == 1  # api in integration
    assert ("conveyor_deployments_total", (("state", "pending"),)) not in metrics
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
    metrics = scrape(api)
    assert metrics[("conveyor_notifications_pending", ())] == 1
    assert metrics[("conveyor_notifications_delivered_total", ())] == 1


def test_two_apps_on_one_store_report_the_same_numbers(blocked: Api) -> None:
    other = TestClient(create_app(blocked.config, blocked.db))
    assert other.get("/metrics").text == blocked.get("/metrics").text


def families(api: Api) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(api.get("/metrics").text)}


def test_counters_are_counters_and_gauges_gauges(blocked: Api) -> None:
    types = {name: family.type for name, family in families(blocked).items()}
    assert types == {
        "conveyor_deployments": "counter",
        "conveyor_deployments_in_flight": "gauge",
        "conveyor_deployment_duration_seconds": "histogram",
        "conveyor_step_duration_seconds": "histogram",
        "conveyor_steps": "gauge",
        "conveyor_place_state": "gauge",
        "conveyor_place_health": "gauge",
        "conveyor_current_release": "gauge",
        "conveyor_place_holds": "gauge",
        "conveyor_holds_active": "gauge",
        "conveyor_notifications_pending": "gauge",
        "conveyor_notifications_delivered": "counter",
        "conveyor_notifications_failed": "counter",
        "conveyor_step_timeouts": "counter",
        "conveyor_notifiers_disabled": "counter",
        "conveyor_poll_failures": "counter",
        "conveyor_poll_failing": "gauge",
        "conveyor_poll_last_answer_timestamp_seconds": "gauge",
    }


def test_each_place_has_one_state_and_one_health_series_and_its_holds(blocked: Api) -> None:
    found = families(blocked)
    places = {(a, e) for a in blocked.config.apps for e in blocked.config.environments}
    for name in ("conveyor_place_state", "conveyor_place_health"):
        samples = found[name].samples
        assert len(samples) == len(places) == 6  # bounded by apps x environments, whatever the history
        assert {(s.labels["app"], s.labels["environment"]) for s in samples} == places
        assert {s.value for s in samples} == {1.0}
    state = {
        (s.labels["app"], s.labels["environment"]): s.labels["state"] for s in found["conveyor_place_state"].samples
    }
    assert state == {
        ("web", "integration"): "succeeded",
        ("web", "staging"): "failed",
        ("web", "production"): "none",
        ("api", "integration"): "none",
        ("api", "staging"): "none",
        ("api", "production"): "none",
    }
    holds = {
        (s.labels["app"], s.labels["environment"], s.labels["kind"]): s.value
        for s in found["conveyor_place_holds"].samples
    }
    assert len(holds) == 6 * len(HoldKind)  # places x hold kinds
    assert holds[("web", "staging", "block")] == 1
    assert sum(holds.values()) == 1


def test_a_global_freeze_holds_every_place(api: Api) -> None:
    with api.db.write() as session:
        session.add(Hold(kind="freeze", reason="release day", actor="cli", since=utc_now(), until=None))
    holds = families(api)["conveyor_place_holds"].samples
    assert {s.value for s in holds if s.labels["kind"] == "freeze"} == {1.0}
    assert {s.value for s in holds if s.labels["kind"] == "block"} == {0.0}


def test_deployment_durations_are_a_cumulative_histogram(blocked: Api) -> None:
    """Counted as deployments end (integration succeeded, staging failed, in the engine), not read from
    every deployment at each scrape; the buckets of durations the fixture's quick deploys do not reach
    are filled as the engine would count them."""
    integration = (("environment", "integration"), ("state", "succeeded"))
    staging = (("environment", "staging"), ("state", "failed"))

    def bucket(labels: tuple[tuple[str, str], ...], le: str) -> float:
        return scrape(blocked)[("conveyor_deployment_duration_seconds_bucket", (labels[0], ("le", le), labels[1]))]

    metrics = scrape(blocked)
    assert metrics[("conveyor_deployment_duration_seconds_count", integration)] == 1
    assert metrics[("conveyor_deployment_duration_seconds_count", staging)] == 1
    assert bucket(integration, "+Inf") == bucket(staging, "+Inf") == 1
    t0 = utc_now()
    with blocked.db.write() as session:
        count_ended(session, [("integration", "succeeded", t0, t0 + timedelta(seconds=3))])
        count_ended(session, [("staging", "failed", t0, t0 + timedelta(seconds=45))])
    metrics = scrape(blocked)
    assert metrics[("conveyor_deployment_duration_seconds_count", integration)] == 2
    assert metrics[("conveyor_deployment_duration_seconds_sum", integration)] >= 3
    assert bucket(integration, "5.0") - bucket(integration, "1.0") == 1
    assert bucket(staging, "60.0") - bucket(staging, "30.0") == 1
    assert bucket(staging, "+Inf") == 2


def test_failed_notifications_are_counted(api: Api) -> None:
    api.ok("/api/apps/web/releases")
    with api.db.write() as session:
        for state in ("failed", "failed", "pending"):
            session.add(Outbox(event_id=1, notifier="chat", state=state, next_attempt_at=utc_now(), **unique_columns()))
    metrics = scrape(api)
    assert (metrics[("conveyor_notifications_failed_total", ())], metrics[("conveyor_notifications_pending", ())]) == (
        2,
        1,
    )
