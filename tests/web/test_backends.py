"""The API on both backends (SQLite always; PostgreSQL when CONVEYOR_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.clock import utc_now
from conveyor.store.tables import Hold
from tests.web.conftest import Api, make_api


@pytest.fixture
def any_api(tmp_path: Path, db_url: str) -> Iterator[Api]:
    yield from make_api(tmp_path, db_url)


def test_a_release_flows_and_reads_back(any_api: Api) -> None:
    released = any_api.ok("/api/apps/web/releases", status=201)
    any_api.work()
    assert any_api.environment("web", "production")["state"] == "succeeded"
    release = any_api.get(f"/api/releases/{released['id']}").json()
    assert [d["state"] for d in release["deployments"]] == ["succeeded"] * 3
    deployment = any_api.get(f"/api/deployments/{release['deployments'][-1]['id']}").json()
    assert all(step["attempts"] for step in deployment["steps"])
    assert any_api.get("/healthz").json() == {"status": "ok", "database": "ok"}


def test_metrics_histogram_on_both_backends(any_api: Api) -> None:
    any_api.ok("/api/apps/web/releases")
    any_api.work()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(any_api.get("/metrics").text)
        for s in family.samples
    }
    assert samples[("conveyor_deployments_total", (("state", "succeeded"),))] == 3
    assert samples[("conveyor_step_duration_seconds_count", (("kind", "deploy"),))] == 3
    assert samples[("conveyor_step_duration_seconds_bucket", (("kind", "deploy"), ("le", "+Inf")))] == 3
    assert 0.3 <= samples[("conveyor_step_duration_seconds_sum", (("kind", "deploy"),))] < 30  # 3 x 0.1 s fake


def test_promote_while_blocked_is_409(any_api: Api) -> None:
    any_api.ok("/api/apps/api/releases")
    any_api.work()
    with any_api.db.write() as session:
        session.add(
            Hold(
                kind="freeze",
                app="api",
                environment="production",
                reason="release freeze",
                actor="cli",
                since=utc_now(),
            )
        )
    response = any_api.post("/api/apps/api/promote")
    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert message.startswith("api is held in production: frozen"), message
    assert "release freeze" in message and "conveyor unfreeze" in message and "--force" in message
