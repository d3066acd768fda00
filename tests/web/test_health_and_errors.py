"""``/healthz``, and errors nobody planned for: one JSON shape, no traceback, no internals."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from conveyor import views
from conveyor.store.database import Database
from conveyor.web import create_app
from tests.web.conftest import Api


def test_healthz_is_ok_when_the_database_answers(api: Api) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_and_metrics_are_503_when_the_database_is_gone(api: Api) -> None:
    unreachable = Database("postgresql+psycopg://conveyor:hunter2-secret@127.0.0.1:1/none")
    client = TestClient(create_app(api.config, unreachable))
    response = client.get("/healthz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert error["message"].startswith("the database cannot be reached: ")
    assert "hunter2" not in response.text
    metrics = client.get("/metrics")
    assert metrics.status_code == 503
    assert metrics.json()["error"]["code"] == "unavailable"
    reads = client.get("/api/apps/web")
    assert reads.status_code == 503
    assert reads.json()["error"] == {"code": "unavailable", "message": "the database cannot be reached"}


def test_an_unexpected_error_is_a_generic_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals at /srv/conveyor/views.py line 42")

    monkeypatch.setattr(views, "status", broken)
    client = TestClient(create_app(api.config, api.db), raise_server_exceptions=False)
    response = client.get("/api/apps")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal", "message": "internal error; the server log has the details"}
    }
    assert "Traceback" not in response.text


def test_a_method_the_route_lacks_is_405_in_the_same_shape(api: Api) -> None:
    response = api.client.delete("/api/apps/web")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
