"""POST rollback, unveto and cancel in-process: answers, refusals, the actor recorded, on both stores."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conveyor.store.tables import Deployment, Event, Hold
from tests.gitrepos import commit
from tests.web.conftest import Api


def _two_releases(api: Api) -> tuple[str, str]:
    first = api.ok("/api/apps/web/releases", status=201)["label"]
    api.work()
    commit(api.project.repo("web"), {"second.txt": "2\n"}, "second")
    second = api.ok("/api/apps/web/releases", status=201)["label"]
    api.work()
    return first, second


def test_rollback_veto_and_unveto(api: Api) -> None:
    first, second = _two_releases(api)
    body = api.ok("/api/apps/web/rollback", {"environment": "production", "reason": "errors"}, status=202)
    assert (body["app"], body["environment"], body["release"], body["vetoed"]) == ("web", "production", first, second)
    api.work()
    production = api.environment("web", "production")
    assert (production["current"], production["health"], production["last_good"]) == (first, "healthy", first)
    holds = api.get("/api/apps/web").json()["holds"]
    assert [(h["kind"], h["release"], h["actor"], h["reason"]) for h in holds] == [("veto", second, "api:ci", "errors")]
    with api.db.read() as s:
        rollback = s.get(Deployment, body["deployment_id"])
        assert rollback is not None and (rollback.override, rollback.created_by) == ("rollback", "api:ci")
        assert [e.actor for e in s.scalars(select(Event).where(Event.kind == "rollback.queued"))] == ["api:ci"]
    refused = api.post("/api/apps/web/promote", {"to": "production"})
    assert refused.status_code == 409 and "vetoed in production" in refused.json()["error"]["message"]
    lifted = api.ok("/api/apps/web/unveto", {"version": second, "environment": "production", "reason": "fixed"})
    assert lifted["release"] == second
    with api.db.read() as s:
        veto = s.scalars(select(Hold).where(Hold.kind == "veto")).one()
        assert (veto.lifted_by, veto.lift_reason) == ("api:ci", "fixed")


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/api/apps/web/rollback", {"environment": "production", "reason": "r"}, 409,
         "nothing of web runs in production: nothing to roll back"),
        ("/api/apps/web/rollback", {"environment": "production"}, 422, "reason: Field required"),
        ("/api/apps/nope/rollback", {"environment": "production", "reason": "r"}, 404,
         "unknown app 'nope' (known: web, api)"),
        ("/api/apps/web/cancel", {"reason": "r"}, 409, "nothing to cancel: web has no queued or running deployment"),
        ("/api/deployments/42/cancel", {"reason": "r"}, 404, "no deployment #42"),
        ("/api/apps/web/unveto", {"version": "v9", "environment": "staging", "reason": "r"}, 404,
         "no release 'v9' of web (see: conveyor history web)"),
    ],
)  # fmt: skip
def test_refusals(api: Api, path: str, body: dict[str, str], status: int, message: str) -> None:
    response = api.post(path, body)
    assert (response.status_code, response.json()["error"]["message"]) == (status, message)


def test_writes_need_a_token(api: Api) -> None:
    response = api.post("/api/apps/web/cancel", {"reason": "r"}, token=None)
    assert response.status_code == 401


def test_cancel_a_queued_deployment(api: Api) -> None:
    api.ok("/api/apps/web/releases", status=201)  # queued, not worked
    body = api.ok("/api/apps/web/cancel", {"reason": "wrong branch", "environment": "integration"})
    assert len(body["cancelled"]) == 1
    assert api.environment("web", "integration")["state"] == "cancelled"
    again = api.post(f"/api/deployments/{body['cancelled'][0]}/cancel", {"reason": "again"})
    assert (again.status_code, again.json()["error"]["message"]) == (
        409,
        f"nothing to cancel: deployment #{body['cancelled'][0]} is cancelled",
    )
