"""The ``sentry`` notifier against a Sentry stand-in on 127.0.0.1 (tests/sentry_standin.py), which checks
the requests' shapes as Sentry's documented endpoints do: the contract, releases, deploy markers, and
one marker per deployment however often a delivery is retried."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.notifiers.base import DeliveryContext, Notifier
from conveyor.notifiers.sentry import SentryNotifier, SentryNotifierOptions
from conveyor.notify.routing import install
from conveyor.operations import Operations
from conveyor.store.database import Database
from tests.integration.harness import deployment_state, wait_for
from tests.notifications.notifier_contract import NotifierContract, make_context, make_notification
from tests.notifications.running import conductor_with_sender, outbox_states, project
from tests.sentry_standin import SentryStandIn

STARTED = datetime(2026, 11, 26, 9, 20, tzinfo=UTC)


def sentry(standin: SentryStandIn, **options: Any) -> SentryNotifier:
    fields = {"url": standin.url, "org": standin.org, "token": standin.token, "timeout": 2.0, **options}
    return SentryNotifier(SentryNotifierOptions.model_validate(fields))


@pytest.fixture
def standin() -> Iterator[SentryStandIn]:
    s = SentryStandIn().start()
    yield s
    s.close()


class TestSentryContract(NotifierContract):
    __test__ = True

    @pytest.fixture
    def notifier(self, standin: SentryStandIn) -> Iterator[Notifier]:
        notifier = sentry(standin)
        yield notifier
        notifier.close()

    @pytest.fixture
    def failing_notifier(self, standin: SentryStandIn) -> Iterator[Notifier | None]:
        standin.mode = "error"
        notifier = sentry(standin)
        yield notifier
        notifier.close()

    @pytest.fixture
    def slow_notifier(self, standin: SentryStandIn) -> Iterator[Notifier | None]:
        standin.mode, standin.hold_seconds = "slow", 2.0
        notifier = sentry(standin, timeout=0.3)
        yield notifier
        notifier.close()


def deliver(notifier: SentryNotifier, kind: str, memory: dict[str, str], **fields: Any) -> Any:
    result = notifier.deliver(
        make_notification(kind=kind, **fields), DeliveryContext("sentry", f"d-{kind}", memory=dict(memory))
    )
    memory.update(result.remember)
    return result


def test_a_release_and_its_deployments_become_a_release_and_deploy_markers(standin: SentryStandIn) -> None:
    notifier = sentry(standin, projects={"shop": ["shop-web", "shop-worker"]}, release_prefix="{app}@")
    memory: dict[str, str] = {}
    try:
        assert deliver(notifier, "release.created", memory, environment=None, deployment_id=None).ok
        assert deliver(notifier, "deployment.started", memory, at=STARTED).ok
        result = deliver(notifier, "deployment.succeeded", memory)
        assert result.ok, result.message
        assert deliver(notifier, "hold.created", memory).ok  # taken, ignored
    finally:
        notifier.close()
    assert standin.releases == {
        "shop@v1.2.3": {
            "version": "shop@v1.2.3",
            "projects": ["shop-web", "shop-worker"],
            "ref": "0123456789abcdef0123456789abcdef01234567",
        }
    }
    [deploy] = standin.deploys["shop@v1.2.3"]
    assert deploy["environment"] == "staging"
    assert deploy["name"] == "conveyor #12 succeeded"
    assert deploy["dateStarted"] == STARTED.isoformat()
    assert deploy["dateFinished"] == make_notification().at.isoformat()
    posts = [(m, p) for m, p, _, _ in standin.requests]
    assert posts == [
        ("POST", "/api/0/organizations/acme/releases/"),
        ("POST", "/api/0/organizations/acme/releases/shop%40v1.2.3/deploys/"),
    ]
    assert all(h["Authorization"] == f"Bearer {standin.token}" for _, _, h, _ in standin.requests)


def test_a_deploy_of_a_release_sentry_does_not_know_creates_it_first(standin: SentryStandIn) -> None:
    notifier = sentry(standin)
    try:
        result = deliver(notifier, "deployment.failed", {})
    finally:
        notifier.close()
    assert result.ok, result.message
    assert standin.releases["v1.2.3"]["projects"] == ["shop"]  # the app's name is its project by default
    assert [d["name"] for d in standin.deploys["v1.2.3"]] == ["conveyor #12 failed"]


def test_a_retried_delivery_adds_no_second_marker(standin: SentryStandIn) -> None:
    notifier = sentry(standin)
    try:
        first = notifier.deliver(make_notification(), make_context())
        again = notifier.deliver(make_notification(), DeliveryContext("sentry", make_context().delivery_id, attempt=2))
        other = notifier.deliver(make_notification(deployment_id=13), DeliveryContext("sentry", "x", attempt=2))
    finally:
        notifier.close()
    assert first.ok and again.ok and other.ok
    assert [d["name"] for d in standin.deploys["v1.2.3"]] == ["conveyor #12 failed", "conveyor #13 failed"]


def test_a_refused_token_fails_the_delivery_without_showing_it(standin: SentryStandIn) -> None:
    notifier = sentry(standin, token="not-the-token")
    try:
        result = notifier.deliver(make_notification(kind="release.created"), make_context())
    finally:
        notifier.close()
    assert not result.ok
    assert "HTTP 401 from Sentry at 127.0.0.1" in result.message and "not-the-token" not in result.message


def test_a_bad_request_is_reported_with_sentrys_answer(standin: SentryStandIn) -> None:
    notifier = sentry(standin)
    try:
        result = deliver(notifier, "deployment.failed", {"sentry_release": "1"})  # Sentry has no such release
    finally:
        notifier.close()
    assert not result.ok and "HTTP 404" in result.message and "does not exist" in result.message


@pytest.mark.parametrize(
    "options",
    [
        {"org": "acme"},
        {"token": "t"},
        {"org": "", "token": "t"},
        {"org": "acme", "token": "t", "url": "sentry.io"},
        {"org": "acme", "token": "t", "projects": {"shop": []}},
        {"org": "acme", "token": "t", "timeout": 120},
    ],
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SentryNotifierOptions.model_validate(options)


def test_defaults() -> None:
    opts = SentryNotifierOptions.model_validate({"org": "acme", "token": "t", "timeout": "5s"})
    assert (opts.url, opts.projects, opts.release_prefix, opts.timeout) == ("https://sentry.io", {}, "", 5.0)
    assert opts.projects_of("shop") == ["shop"] and opts.version("shop", "v2") == "v2"


OUTBOX_CONFIG = """\
environments: [staging, production]
notifiers:
  sentry:
    type: sentry
    global: true
    events: [release.created, deployment.started, deployment.succeeded, deployment.failed]
    url: "{url}"
    org: acme
    token: "${{SENTRY_TOKEN}}"
    release_prefix: "{{app}}@"
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: fake, duration: 0.05}}
  checks: [{{name: smoke, type: fake, count: 1}}]
apps:
  web: {{repo: ./repos/web, team: publishing}}
"""


@pytest.mark.timeout(90)
def test_through_the_outbox_a_pipeline_run_becomes_one_release_and_a_marker_per_environment(
    standin: SentryStandIn, tmp_path: Path, db_url: str
) -> None:
    """Sentry is down (500) while the pipeline runs; the release still reaches production, and once Sentry
    answers, the outbox delivers: one release, one deploy marker per environment, each with its start."""
    standin.mode = "error"
    config = project(tmp_path, OUTBOX_CONFIG.format(url=standin.url), ("web",), {"SENTRY_TOKEN": standin.token})
    assert "web" in config.apps
    db = Database(db_url)
    install(db, config)
    try:
        with conductor_with_sender(config, db_url):
            release = Operations(config, db).create_release("web")
            wait_for(
                lambda: deployment_state(db, "web", "production", release.release_id) == "succeeded",
                30,
                "the release in production while Sentry is down",
            )
            standin.mode = "ok"
            wait_for(lambda: outbox_states(db) == {"delivered": 5}, 30, "every notification delivered")
    finally:
        db.dispose()
    version = f"web@{release.label}"
    assert list(standin.releases) == [version]
    deploys = standin.deploys[version]
    assert sorted(d["environment"] for d in deploys) == ["production", "staging"]
    assert all(d["name"].endswith(" succeeded") and d["dateStarted"] for d in deploys)
    assert all(d["dateStarted"] <= d["dateFinished"] for d in deploys)


@pytest.mark.parametrize("option", list(SentryNotifierOptions.model_fields))
def test_every_option_is_documented(option: str) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text(encoding="utf-8")
    section = doc.split("### `sentry`")[1].split("\n### ")[0]
    assert f"| `{option}` |" in section
