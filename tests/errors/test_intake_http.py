"""The intake's HTTP answers, in-process: who may send (401 without a key, 403 with a wrong one or for an
app no longer configured), what is refused (400, 413 before and after decompression), the rate limit's
headers, the ``/store/`` route, and the issues read back from ``GET /api/apps/{app}/errors``."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conveyor.config import load_config
from conveyor.store.database import Database
from conveyor.store.error_events import Project, project_for
from conveyor.store.migrate import upgrade
from conveyor.web import create_app
from tests.cli.conftest import BASE_CONFIG, write_project

CONFIG = (
    BASE_CONFIG
    + """\
errors:
  max_body_bytes: 20000
  max_decompressed_bytes: 100000
  rate_limit: {envelopes: 5, per: 1m}
"""
)
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


class Intake:
    def __init__(self, client: TestClient, project: Project) -> None:
        self.client, self.project = client, project

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {
            "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key or self.project.public_key}, sentry_client=t/1"
        }

    def envelope(
        self, *events: dict[str, object], headers: dict[str, str] | None = None, project_id: int | None = None
    ):  # type: ignore[no-untyped-def]
        lines = [json.dumps({"event_id": "e" * 32})]
        for event in events:
            payload = json.dumps(event)
            lines += [json.dumps({"type": "event", "length": len(payload)}), payload]
        body = gzip.compress("\n".join(lines).encode())
        return self.client.post(
            f"/api/{project_id or self.project.id}/envelope/",
            content=body,
            headers={
                "Content-Encoding": "gzip",
                "Content-Type": "application/x-sentry-envelope",
                **(headers if headers is not None else self.auth()),
            },
        )


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Intake]:
    project = write_project(tmp_path, CONFIG)
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    db = Database(url)
    upgrade(db)
    with db.write() as session:
        web = project_for(session, "web", "staging", NOW)
        project_for(session, "gone", "staging", NOW)  # an app since removed from the config
    config = load_config(project.config, {"CONVEYOR_DATABASE_URL": url})
    with TestClient(create_app(config, db)) as client:
        yield Intake(client, web)
    db.dispose()


def test_an_envelope_is_stored_and_read_back_as_an_issue(intake: Intake) -> None:
    answer = intake.envelope({"event_id": "a" * 32, "message": "hello", "release": "v7"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": "a" * 32}
    issues = intake.client.get("/api/apps/web/errors", params={"environment": "staging", "since": "1h"}).json()
    assert [(i["title"], i["events"], i["first_release"]) for i in issues["issues"]] == [("hello", 1, "v7")]
    assert intake.client.get("/api/apps/web/errors", params={"environment": "production"}).json()["issues"] == []
    assert intake.client.get("/api/apps/nope/errors").status_code == 404
    assert intake.client.get("/api/apps/web/errors", params={"since": "yesterday-ish"}).status_code == 422


def test_text_no_utf8_can_hold_is_stored_with_a_replacement_character(intake: Intake) -> None:
    """A lone surrogate (what a Python SDK escapes for a file name decoded with surrogateescape) answered
    500 and lost the event; an emoji escaped as a pair of surrogates is one character and is kept."""
    answer = intake.envelope({"event_id": "b" * 32, "message": "open('/srv/\udcff.txt') failed \U0001f600"})
    assert answer.status_code == 200, answer.text
    issues = intake.client.get("/api/apps/web/errors", params={"environment": "staging"}).json()["issues"]
    assert [i["title"] for i in issues] == ["open('/srv/\ufffd.txt') failed \U0001f600"]


def test_the_store_route_and_the_key_as_a_query_parameter(intake: Intake) -> None:
    answer = intake.client.post(
        f"/api/{intake.project.id}/store/",
        params={"sentry_key": intake.project.public_key},
        json={"message": "old sdk"},
    )
    assert answer.status_code == 200, answer.text
    titles = [i["title"] for i in intake.client.get("/api/apps/web/errors").json()["issues"]]
    assert titles == ["old sdk"]


def test_who_may_send(intake: Intake) -> None:
    assert intake.envelope({"message": "x"}, headers={}).status_code == 401
    assert intake.envelope({"message": "x"}, headers=intake.auth("0" * 32)).status_code == 403
    assert intake.envelope({"message": "x"}, project_id=999).status_code == 403
    assert intake.envelope({"message": "x"}, project_id=intake.project.id + 1).status_code == 403  # app "gone"
    assert intake.client.get("/api/apps/web/errors").json()["issues"] == []


def test_what_is_refused(intake: Intake) -> None:
    url, headers = f"/api/{intake.project.id}/envelope/", intake.auth()
    assert intake.client.post(url, content=b"not an envelope", headers=headers).status_code == 400
    assert intake.client.post(url, content=b"x", headers={**headers, "Content-Encoding": "gzip"}).status_code == 400
    assert intake.client.post(url, content=b"x", headers={**headers, "Content-Encoding": "zstd"}).status_code == 400
    too_big = intake.client.post(url, content=b"{}\n" + b" " * 30000, headers=headers)
    assert too_big.status_code == 413  # over max_body_bytes as sent
    bomb = gzip.compress(b"{}\n" + b" " * 200_000)
    assert len(bomb) < 20000
    refused = intake.client.post(url, content=bomb, headers={**headers, "Content-Encoding": "gzip"})
    assert refused.status_code == 413 and "decompressed" in refused.text


def test_an_empty_body_and_a_project_id_out_of_range_are_refused(intake: Intake) -> None:
    url, headers = f"/api/{intake.project.id}/envelope/", intake.auth()
    for empty in (b"", b"\n", b"  "):
        answer = intake.client.post(url, content=empty, headers=headers)
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid"), empty
        assert "the body is empty" in answer.json()["error"]["message"]
    for out_of_range in ("0", "2147483648", "9999999999", "99999999999999"):  # the route's 1 .. 2**31 - 1
        answer = intake.client.post(f"/api/{out_of_range}/envelope/", content=b"{}\n", headers=headers)
        assert answer.status_code == 422, (out_of_range, answer.text)


def test_a_transaction_or_session_is_accepted_and_dropped(intake: Intake) -> None:
    body = b'{}\n{"type":"transaction"}\n{"spans":[]}\n{"type":"session"}\n{"sid":"x"}\n'
    answer = intake.client.post(f"/api/{intake.project.id}/envelope/", content=body, headers=intake.auth())
    assert answer.status_code == 200
    assert intake.client.get("/api/apps/web/errors").json()["issues"] == []


def test_the_rate_limit_answers_429_with_the_headers_sdks_honour(intake: Intake) -> None:
    assert [intake.envelope({"message": "x"}).status_code for _ in range(5)] == [200] * 5
    refused = intake.envelope({"message": "x"})
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= 60
    assert refused.headers["X-Sentry-Rate-Limits"] == f"{wait}::key"
    assert intake.client.get("/api/apps/web/errors").json()["issues"][0]["events"] == 5


def test_the_errors_command_reads_locally_and_from_a_server(intake: Intake, tmp_path: Path) -> None:
    intake.envelope({"message": "from the cli"})
    from tests.cli.conftest import Project

    project = Project(tmp_path)
    env = {"CONVEYOR_DATABASE_URL": f"sqlite:///{tmp_path / 'conveyor.db'}"}
    local = project.run("errors", "web", "--env", "staging", "--json", env=env)
    assert local.exit_code == 0, local.output
    assert [i["title"] for i in json.loads(local.output)["issues"]] == ["from the cli"]
    table = project.run("errors", "web", "--since", "2h", env=env)
    assert table.exit_code == 0 and "from the cli" in table.output
    assert project.run("errors", "nope", env=env).exit_code == 2
    assert project.run("errors", "web", "--since", "soon", env=env).exit_code == 2


def test_the_dsn_command_refuses_unknown_names(tmp_path: Path) -> None:
    project = write_project(tmp_path, CONFIG)
    assert project.run("dsn", "nope", "--env", "staging").exit_code == 2
    assert project.run("dsn", "web", "--env", "nowhere").exit_code == 2
    made = project.run("dsn", "web", "--env", "staging")
    assert (
        made.exit_code == 0 and made.output.startswith("http://") and made.output.strip().endswith("@127.0.0.1:8080/1")
    )


def test_the_dsn_command_needs_no_secret_of_the_hooks_or_notifiers(tmp_path: Path) -> None:
    """A DSN is a key in the database: whoever hands it to an app need not hold GitHub's or a notifier's
    secrets (they are not set where people run commands)."""
    project = write_project(
        tmp_path,
        CONFIG
        + "github: {webhook_secret: '${GITHUB_WEBHOOK_SECRET}'}\n"
        + "notifiers: {hook: {type: webhook, url: 'https://example.org/h', secret: '${HOOK_SECRET}'}}\n",
    )
    made = project.run("dsn", "web", "--env", "staging", env={"GITHUB_WEBHOOK_SECRET": None, "HOOK_SECRET": None})
    assert made.exit_code == 0, made.output
    assert made.output.strip().endswith("@127.0.0.1:8080/1")
