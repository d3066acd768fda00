"""``POST /hooks/alertmanager``: in-process on both databases, then a real Alertmanager notifying a real
``conveyor serve``."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conveyor.notify.routing import install
from conveyor.operations import Operations
from conveyor.store.tables import Event, Hold, Outbox
from tests.monitoring import post_alert, start_alertmanager, wait_for
from tests.web.conftest import API_CONFIG, Api, make_api
from tests.web.test_serve import Live, start

HOOK_TOKEN = "alertmanager-token-0123456789"
HOOK_PASSWORD = "alertmanager-password-0123456789"
HOOK_SECTION = f"""\
notifiers:
  audit: {{type: fake, global: true}}
alertmanager:
  token: {HOOK_TOKEN}
  basic_auth: {{username: alertmanager, password: {HOOK_PASSWORD}}}
  stop_on:
    production: {{severity: critical}}
    staging: ['severity=~"critical|page"', 'env="staging"']
"""
HOOK_CONFIG = API_CONFIG + HOOK_SECTION
BEARER = {"Authorization": f"Bearer {HOOK_TOKEN}"}


@pytest.fixture
def hooked(tmp_path: Path, db_url: str) -> Iterator[Api]:
    for api in make_api(tmp_path, db_url, HOOK_CONFIG):
        install(api.db, api.config)
        yield api


def alert(
    status: str = "firing",
    fingerprint: str = "a1b2c3d4e5f60718",
    starts_at: str = "2026-11-29T08:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "Http5xx", "severity": "critical", **labels},
        "annotations": {"summary": "5xx above 5% for 2m"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph?g0.expr=x",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="Http5xx"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "conveyor",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "alerts": list(alerts),
    }


def send(api: Api, body: Any, headers: dict[str, str] | None = BEARER) -> httpx.Response:
    return api.client.post("/hooks/alertmanager", json=body, headers=headers or {})


def holds(api: Api) -> list[Hold]:
    with api.db.read() as session:
        return list(session.scalars(select(Hold).order_by(Hold.id)))


def test_a_critical_alert_stops_production_once_and_lifts_when_resolved(hooked: Api) -> None:
    raised = send(hooked, notification(alert(env="production")))
    assert raised.status_code == 200, raised.text
    (hold_id,) = raised.json()["raised"]
    (hold,) = holds(hooked)
    assert (hold.id, hold.kind, hold.environment, hold.app, hold.actor) == (
        hold_id,
        "stop",
        "production",
        None,
        "alertmanager",
    )
    assert hold.reason == "alert Http5xx is firing: 5xx above 5% for 2m"
    assert hold.evidence["fingerprint"] == "a1b2c3d4e5f60718"
    assert hold.evidence["labels"]["env"] == "production"
    assert hold.evidence["matched"] == ['severity="critical"']
    listed = hooked.get("/api/holds").json()["holds"]
    assert [(h["id"], h["kind"], h["actor"]) for h in listed] == [(hold_id, "stop", "alertmanager")]

    # Alertmanager repeats itself (repeat_interval, an HA pair): nothing new
    again = send(hooked, notification(alert(env="production")))
    assert again.json() == {"raised": [], "lifted": [], "unchanged": 1}
    assert len(holds(hooked)) == 1

    lifted = send(hooked, notification(alert("resolved", env="production")))
    assert lifted.json() == {"raised": [], "lifted": [hold_id], "unchanged": 0}
    (hold,) = holds(hooked)
    assert (hold.lifted_by, hold.lift_reason) == ("alertmanager", "alert Http5xx resolved")
    assert hooked.get("/api/holds").json()["holds"] == []
    assert send(hooked, notification(alert("resolved", env="production"))).json()["unchanged"] == 1

    with hooked.db.read() as session:
        events = session.scalars(select(Event).where(Event.kind.like("hold.%")).order_by(Event.id)).all()
        recorded = [(e.kind, e.actor, e.action, e.environment) for e in events]
        notified = session.scalars(select(Outbox.event_id).where(Outbox.notifier == "audit")).all()
        assert set(notified) == {e.id for e in events}  # both raising and lifting are notified
    assert recorded == [
        ("hold.created", "alertmanager", "stop", "production"),
        ("hold.lifted", "alertmanager", "unfreeze", "production"),
    ]


def test_the_line_stays_stopped_while_any_matching_alert_fires(hooked: Api) -> None:
    body = notification(alert(fingerprint="aaaa", env="staging"), alert(fingerprint="bbbb", alertname="Latency"))
    raised = send(hooked, body).json()["raised"]
    # aaaa matches both environments' rules (critical, env=staging); bbbb only production's
    assert sorted((h.environment, h.origin) for h in holds(hooked)) == [
        ("production", "alertmanager:aaaa:production"),
        ("production", "alertmanager:bbbb:production"),
        ("staging", "alertmanager:aaaa:staging"),
    ]
    assert len(raised) == 3
    send(hooked, notification(alert("resolved", fingerprint="aaaa", env="staging")))
    still = [(h["environment"], h["reason"]) for h in hooked.get("/api/holds").json()["holds"]]
    assert still == [("production", "alert Latency is firing: 5xx above 5% for 2m")]


def test_alerts_not_matching_stop_on_change_nothing(hooked: Api) -> None:
    warning = alert(severity="warning", env="production")
    page_in_production = alert(severity="page", env="production")
    assert send(hooked, notification(warning, page_in_production)).json() == {
        "raised": [],
        "lifted": [],
        "unchanged": 2,
    }
    assert holds(hooked) == []


def test_a_stopped_environment_holds_deployments(hooked: Api) -> None:
    send(hooked, notification(alert(env="production")))
    hooked.ok("/api/apps/web/releases")
    hooked.work()
    assert hooked.environment("web", "staging")["state"] == "succeeded"
    production = hooked.environment("web", "production")
    assert production["state"] == "waiting"
    assert [o["kind"] for o in production["obstacles"]] == ["stop"]
    send(hooked, notification(alert("resolved", env="production")))
    hooked.work()
    assert hooked.environment("web", "production")["state"] == "succeeded"


def test_a_hold_lifted_by_hand_is_not_raised_again_by_the_same_firing(hooked: Api) -> None:
    (hold_id,) = send(hooked, notification(alert(env="production"))).json()["raised"]
    hooked.ok(f"/api/holds/{hold_id}/unfreeze", {"reason": "known, fix on its way"})
    assert send(hooked, notification(alert(env="production"))).json()["raised"] == []
    refired = send(hooked, notification(alert(env="production", starts_at="2026-11-29T09:30:00Z")))
    assert len(refired.json()["raised"]) == 1


def test_basic_auth_as_alertmanager_sends_it(hooked: Api) -> None:
    good = base64.b64encode(f"alertmanager:{HOOK_PASSWORD}".encode()).decode()
    response = send(hooked, notification(alert(env="production")), {"Authorization": f"Basic {good}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": "Basic " + base64.b64encode(f"someone:{HOOK_PASSWORD}".encode()).decode()},
        {"Authorization": "Basic " + base64.b64encode(b"alertmanager:wrong").decode()},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer ci-token-0123456789abcdef"},  # an API token is not the hook's
    ],
)
def test_wrong_credentials_are_refused(hooked: Api, headers: dict[str, str] | None) -> None:
    response = send(hooked, notification(alert(env="production")), headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert holds(hooked) == []


@pytest.mark.parametrize(
    "body",
    [
        {**notification(alert()), "version": "3"},
        {**notification(alert()), "alerts": [{**alert(), "status": "pending"}]},
        {**notification(alert()), "alerts": [{**alert(), "fingerprint": "../../etc"}]},
        [],
    ],
)
def test_a_body_that_is_not_a_version_4_notification_is_422(hooked: Api, body: Any) -> None:
    response = send(hooked, body)
    assert response.status_code == 422, response.text


def test_without_the_section_the_hook_is_off(api: Api) -> None:
    response = send(api, notification(alert()))
    assert response.status_code == 404
    assert "alertmanager" in response.json()["error"]["message"]


# -- a real Alertmanager notifying a real conveyor serve ------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    server = start(tmp_path / "conveyor", HOOK_CONFIG)
    yield server
    if server.process.poll() is None:
        server.stop()


def test_alertmanager_stops_and_restarts_the_line_of_a_live_server(live: Live, tmp_path: Path) -> None:
    receiver = {
        "url": f"{live.url}/hooks/alertmanager",
        "http_config": {"authorization": {"type": "Bearer", "credentials": HOOK_TOKEN}},
    }
    labels = {"alertname": "Http5xx", "severity": "critical", "env": "production", "app": "web"}
    with start_alertmanager(tmp_path / "alertmanager", receiver) as alertmanager:
        post_alert(alertmanager, labels, "5xx above 5% for 2m")

        def open_holds() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = httpx.get(f"{live.url}/api/holds").json()["holds"]
            return found

        (hold,) = wait_for(open_holds, timeout=30, what="the stop hold", program=alertmanager)
        assert (hold["kind"], hold["environment"], hold["actor"]) == ("stop", "production", "alertmanager")
        assert hold["reason"] == "alert Http5xx is firing: 5xx above 5% for 2m"

        # repeat_interval is 2s: let Alertmanager notify again, then resolve
        wait_for(lambda: alertmanager.output().count('msg="Notify success"') >= 3, timeout=20, program=alertmanager)
        assert len(open_holds()) == 1
        post_alert(alertmanager, labels, "5xx above 5% for 2m", resolved=True)
        wait_for(lambda: not open_holds(), timeout=30, what="the hold to lift", program=alertmanager)
    output = live.output()
    assert "Traceback" not in output


def test_notifications_racing_each_other_raise_one_hold(hooked: Api) -> None:
    """An HA pair of Alertmanagers sends the same notification at once, to two conveyor processes."""
    operations = [Operations(hooked.config, hooked.db) for _ in range(6)]
    start_together = threading.Barrier(len(operations))
    results: list[int | None] = []

    def raise_one(ops: Operations) -> None:
        start_together.wait()
        results.append(ops.stop_for("production", "alertmanager:race:production", "alert Race", {}, "alertmanager"))

    threads = [threading.Thread(target=raise_one, args=(ops,)) for ops in operations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([r for r in results if r is not None]) == 1
    assert len(holds(hooked)) == 1
