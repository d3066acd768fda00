"""Fixtures of the GitHub tests: GitHub's OpenAPI description (loaded once), a stand-in per test, and a
project whose apps follow GitHub repositories with the hook in-process and signed deliveries."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import select

from conveyor.clock import utc_now
from conveyor.config import Config, load_config
from conveyor.github.chores import work_deliveries
from conveyor.github.deliveries import DeliveryQueue
from conveyor.github.intake import Intake
from conveyor.github.signature import sign
from conveyor.operations import GitHubLinks, ReleaseResult
from conveyor.store.database import Database
from conveyor.store.tables import GitHubDelivery, Release
from conveyor.web import create_app
from tests.github.description import GitHubDescription, description_path
from tests.github.standin import GitHubStandIn
from tests.gitrepos import make_repo

TOKEN = "ghp_conveyortesttoken0000000000000000000"
APP_ID = 12345


@pytest.fixture(scope="session")
def github_description() -> GitHubDescription:
    return GitHubDescription(description_path())


@pytest.fixture(scope="session")
def app_key() -> tuple[str, str]:
    """A GitHub App's key pair as PEM text: (private, public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def standin(github_description: GitHubDescription, app_key: tuple[str, str]) -> Iterator[GitHubStandIn]:
    """A stand-in that takes the token ``TOKEN`` and the App ``APP_ID``; it must see no invalid request."""
    server = GitHubStandIn(github_description, token=TOKEN, app_id=APP_ID, public_key=app_key[1]).start()
    yield server
    server.close()
    assert server.problems == [], server.problems


SECRET = "webhook-secret-0123456789"
ENVIRON = {"GITHUB_WEBHOOK_SECRET": SECRET}
_ids = itertools.count(1)


def delivery_headers(event: str, body: bytes, delivery: str | None = None, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or f"delivery-{next(_ids)}",
        "X-Hub-Signature-256": sign(secret, body),
        "Content-Type": "application/json",
    }


def post_hook(
    client: TestClient | httpx.Client, event: str, payload: Any, delivery: str | None = None
) -> httpx.Response:
    body = json.dumps(payload).encode()
    return client.post("/hooks/github", content=body, headers=delivery_headers(event, body, delivery))


@dataclass
class RecordingReleaser:
    """Releases by (app, sha) as the intake asks for them, recorded as Release rows without git (the
    published examples name commits no local repository has)."""

    db: Database
    calls: list[tuple[str, str, GitHubLinks]] = field(default_factory=list)

    def __call__(self, app: str, sha: str, links: GitHubLinks) -> ReleaseResult:
        self.calls.append((app, sha, links))
        with self.db.write() as session:
            found = session.scalar(select(Release).where(Release.app == app, Release.sha == sha))
            if found is not None:
                return ReleaseResult(found.id, found.label, sha, False, 0)
            release = Release(
                app=app, sha=sha, label=sha[:7], ref=sha, commits=[], created_at=utc_now(), created_by="github"
            )
            session.add(release)
            session.flush()
            return ReleaseResult(release.id, release.label, sha, True, 0)


@dataclass
class Hooked:
    config: Config
    db: Database
    client: TestClient
    intake: Intake
    queue: DeliveryQueue
    releaser: RecordingReleaser

    def post(self, event: str, payload: Any, delivery: str | None = None) -> httpx.Response:
        return post_hook(self.client, event, payload, delivery)

    def work(self) -> bool:
        return work_deliveries(self.intake, self.queue, None)

    def deliveries(self) -> list[GitHubDelivery]:
        with self.db.read() as session:
            return list(session.scalars(select(GitHubDelivery).order_by(GitHubDelivery.id)))


def hooked(root: Path, db_url: str, config_text: str, clock: Any = utc_now) -> Iterator[Hooked]:
    make_repo(root / "repos" / "web", {"app.py": "print('web')\n"}, "web: first commit")
    (root / "conveyor.yaml").write_text(config_text)
    config = load_config(root / "conveyor.yaml", {**ENVIRON, "CONVEYOR_DATABASE_URL": db_url})
    db = Database(db_url)
    releaser = RecordingReleaser(db)
    intake = Intake(config, db, clock, release=releaser)
    queue = DeliveryQueue(db, owner="test", clock=clock)
    with TestClient(create_app(config, db)) as client:
        yield Hooked(config, db, client, intake, queue, releaser)
    db.dispose()


def now() -> datetime:
    return utc_now()


@pytest.fixture
def examples() -> dict[str, list[dict[str, Any]]]:
    from tests.github.examples import webhook_examples

    return webhook_examples()
