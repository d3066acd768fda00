"""``POST /hooks/github`` checks the signature before anything is parsed or stored, and a redelivery has no
second effect: here with real releases from a real repository (``ci: none`` releases on push)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conveyor.config import load_config
from conveyor.github.chores import github_chores
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from conveyor.store.tables import Candidate, GitHubDelivery, Release
from conveyor.web import create_app
from tests.github.conftest import ENVIRON, SECRET, delivery_headers
from tests.gitrepos import head, make_repo

CONFIG = """\
teams: {publishing: {}}
defaults:
  deploy: {driver: fake}
github:
  webhook_secret: ${GITHUB_WEBHOOK_SECRET}
apps:
  web: {repo: ./repos/web, github: acme/web, team: publishing, ci: none}
"""


def push_payload(sha: str, before: str = "0" * 40) -> dict[str, object]:
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": sha,
        "compare": f"https://github.com/acme/web/compare/{before[:12]}...{sha[:12]}",
        "commits": [
            {
                "id": sha,
                "message": "Add the home page (#7)",
                "author": {"name": "A User", "email": "user@example.org", "username": "a-user"},
                "added": ["app.py"],
                "modified": [],
                "removed": [],
            }
        ],
        "repository": {"full_name": "acme/web", "html_url": "https://github.com/acme/web"},
    }


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[TestClient, Database, Path]]:
    repo = make_repo(tmp_path / "repos" / "web", {"app.py": "print('web')\n"}, "Add the home page (#7)")
    (tmp_path / "conveyor.yaml").write_text(CONFIG)
    db = Database(f"sqlite:///{tmp_path / 'conveyor.db'}")
    upgrade(db)
    config = load_config(tmp_path / "conveyor.yaml", ENVIRON)
    with TestClient(create_app(config, db)) as client:
        client.app.state.chores = github_chores(config, db, None)  # type: ignore[attr-defined]
        yield client, db, repo
    db.dispose()


def work(client: TestClient) -> None:
    for chore in client.app.state.chores:  # type: ignore[attr-defined]
        if chore.name == "github-intake":
            chore.run()


def stored(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(GitHubDelivery)) or 0)


def releases(db: Database) -> list[tuple[str, str]]:
    with db.read() as session:
        return [(r.sha, r.created_by) for r in session.scalars(select(Release))]


def test_a_valid_signature_is_recorded_and_released_from_the_worker(project: tuple[TestClient, Database, Path]) -> None:
    client, db, repo = project
    body = json.dumps(push_payload(head(repo))).encode()
    answer = client.post("/hooks/github", content=body, headers=delivery_headers("push", body, "d-1"))
    assert (answer.status_code, answer.json()["outcome"]) == (202, "pending")
    assert releases(db) == []  # the request only records
    work(client)
    assert releases(db) == [(head(repo), "github")]
    with db.read() as session:
        release = session.scalars(select(Release)).one()
        assert release.pull_requests == [{"number": 7, "url": "https://github.com/acme/web/pull/7"}]
        assert release.commits[0]["login"] == "a-user" and release.commits[0]["pull_requests"] == [7]
        assert release.compare_url == push_payload(head(repo))["compare"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"X-Hub-Signature-256": "sha256=" + "0" * 64}, id="wrong"),
        pytest.param({"X-Hub-Signature-256": "sha256=abc"}, id="malformed"),
        pytest.param({"X-Hub-Signature-256": SECRET}, id="the-secret-itself"),
        pytest.param({"X-Hub-Signature": "sha1=" + "0" * 40}, id="sha1-only"),
    ],
)
def test_a_bad_signature_is_refused_and_nothing_is_stored(
    project: tuple[TestClient, Database, Path], headers: dict[str, str]
) -> None:
    client, db, repo = project
    body = json.dumps(push_payload(head(repo))).encode()
    sent = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1", "Content-Type": "application/json", **headers}
    answer = client.post("/hooks/github", content=body, headers=sent)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthorized"
    assert stored(db) == 0


def test_a_body_changed_by_one_byte_is_refused(project: tuple[TestClient, Database, Path]) -> None:
    client, db, repo = project
    body = json.dumps(push_payload(head(repo))).encode()
    headers = delivery_headers("push", body, "d-1")
    changed = body.replace(b'"full_name": "acme/web"', b'"full_name": "acme/wec"')
    assert len(changed) == len(body) and changed != body
    assert client.post("/hooks/github", content=changed, headers=headers).status_code == 401
    assert stored(db) == 0


def test_a_sha1_signature_beside_a_wrong_sha256_is_still_refused(project: tuple[TestClient, Database, Path]) -> None:
    client, db, repo = project
    body = json.dumps(push_payload(head(repo))).encode()
    headers = {**delivery_headers("push", body, "d-1", secret="another-secret"), "X-Hub-Signature": "sha1=00"}
    assert client.post("/hooks/github", content=body, headers=headers).status_code == 401
    assert stored(db) == 0


def test_a_replayed_delivery_answers_200_and_makes_no_second_release(
    project: tuple[TestClient, Database, Path],
) -> None:
    client, db, repo = project
    body = json.dumps(push_payload(head(repo))).encode()
    headers = delivery_headers("push", body, "d-1")
    assert client.post("/hooks/github", content=body, headers=headers).status_code == 202
    work(client)
    again = client.post("/hooks/github", content=body, headers=headers)
    assert (again.status_code, again.json()["outcome"]) == (200, "redelivery")
    work(client)
    assert stored(db) == 1
    assert releases(db) == [(head(repo), "github")]
    with db.read() as session:
        assert [c.state for c in session.scalars(select(Candidate))] == ["released"]


def test_signed_deliveries_without_their_headers_are_invalid(project: tuple[TestClient, Database, Path]) -> None:
    client, db, _ = project
    body = b"{}"
    headers = delivery_headers("push", body)
    del headers["X-GitHub-Delivery"]
    answer = client.post("/hooks/github", content=body, headers=headers)
    assert (answer.status_code, answer.json()["error"]["field"]) == (422, "X-GitHub-Delivery")
    assert stored(db) == 0


def test_an_unreadable_payload_is_recorded_as_ignored(project: tuple[TestClient, Database, Path]) -> None:
    client, db, _ = project
    for n, body in enumerate([b"not json", b'{"ref": 1}']):
        assert (
            client.post("/hooks/github", content=body, headers=delivery_headers("push", body, f"u-{n}")).status_code
            == 202
        )
    work(client)
    with db.read() as session:
        notes = [(d.state, d.note.split(":")[0]) for d in session.scalars(select(GitHubDelivery))]
    assert notes == [("ignored", "unreadable push payload")] * 2
