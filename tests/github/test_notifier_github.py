"""The ``github`` notifier: the contract, what it tells GitHub for each deployment event, its routing.

Every request reaches the stand-in, which holds it to GitHub's OpenAPI description.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from conveyor.config import ConfigError
from conveyor.config.resolved import GitHubConfig, NotifierConfig
from conveyor.github.client import GitHubClient, RetryLimits
from conveyor.notifiers.base import DeliveryContext, DeliveryResult, NoOptions, Notification, Notifier, ReleaseRef
from conveyor.notifiers.github import DEPLOYMENT_STATES, GitHubNotifier
from conveyor.notify.routing import Router
from tests.github.conftest import TOKEN
from tests.github.standin import GitHubStandIn, Scripted
from tests.notifications.configs import ROUTING, load_text
from tests.notifications.notifier_contract import NotifierContract, make_context, make_notification

PUBLIC = "https://conveyor.example.org"
OLD_SHA = "1111111111111111111111111111111111111111"
NEW_SHA = "2222222222222222222222222222222222222222"
FAST = RetryLimits(attempts=2, backoff=0.01, max_backoff=0.05, max_wait=2.0, timeout=2.0)


def github_notifier(standin: GitHubStandIn, limits: RetryLimits = FAST) -> GitHubNotifier:
    client = GitHubClient(GitHubConfig(api_url=standin.url, token=TOKEN), limits=limits)
    return GitHubNotifier(
        NoOptions(), client=client, repos={"shop": "octo/shop"}, link=lambda p: PUBLIC + p, production="production"
    )


@pytest.fixture
def notifier(standin: GitHubStandIn) -> Iterator[GitHubNotifier]:
    notifier = github_notifier(standin)
    yield notifier
    notifier.close()


class TestGitHubContract(NotifierContract):
    __test__ = True

    @pytest.fixture
    def notifier(self, standin: GitHubStandIn) -> Iterator[Notifier]:
        notifier = github_notifier(standin)
        yield notifier
        notifier.close()

    @pytest.fixture
    def failing_notifier(self, standin: GitHubStandIn) -> Iterator[Notifier | None]:
        standin.outage_until = time.monotonic() + 3600
        notifier = github_notifier(standin)
        yield notifier
        notifier.close()

    @pytest.fixture
    def slow_notifier(self, standin: GitHubStandIn) -> Iterator[Notifier | None]:
        standin.delay = 2.0
        notifier = github_notifier(standin, RetryLimits(attempts=2, backoff=0.01, timeout=0.3))
        yield notifier
        notifier.close()


def event(kind: str, deployment_id: int = 12, sha: str = NEW_SHA, **fields: object) -> Notification:
    release = ReleaseRef(7 if sha == NEW_SHA else 6, "v1.2.3" if sha == NEW_SHA else "v1.2.2", sha)
    defaults: dict[str, object] = {"kind": kind, "deployment_id": deployment_id, "release": release}
    defaults["environment"] = "production"
    return make_notification(**(defaults | fields))


def deliver(notifier: GitHubNotifier, n: Notification, memory: dict[str, str]) -> DeliveryResult:
    """Deliver as the sender does: with the release's memory, which takes what the result remembers."""
    result = notifier.deliver(n, DeliveryContext("github", f"d-{n.kind}", memory=dict(memory)))
    memory.update(result.remember)
    return result


def test_a_deployment_its_statuses_and_the_one_it_replaced(standin: GitHubStandIn, notifier: GitHubNotifier) -> None:
    old: dict[str, str] = {}
    assert deliver(notifier, event("deployment.started", 5, OLD_SHA), old).ok
    assert deliver(notifier, event("deployment.succeeded", 5, OLD_SHA), old).ok
    new: dict[str, str] = {}
    assert deliver(notifier, event("deployment.started"), new).ok
    replaced = {"replaced": {"deployment_id": 5, "release": {"id": 6, "label": "v1.2.2", "sha": OLD_SHA}}}
    result = deliver(notifier, event("deployment.succeeded", data=replaced), new)
    assert result.ok, result.message
    assert (old, new) == ({"deployment:5": "1"}, {"deployment:12": "2"})
    assert standin.timeline() == [
        ("production", OLD_SHA, "created"),
        ("production", OLD_SHA, "in_progress"),
        ("production", OLD_SHA, "success"),
        ("production", NEW_SHA, "created"),
        ("production", NEW_SHA, "in_progress"),
        ("production", NEW_SHA, "success"),
        ("production", OLD_SHA, "inactive"),
    ]
    created = standin.deployments[1].body
    assert created["ref"] == NEW_SHA and created["environment"] == "production"
    assert created["auto_merge"] is False and created["required_contexts"] == []
    assert created["production_environment"] is True
    assert created["payload"]["conveyor"] == {
        "deployment_id": 12,
        "app": "shop",
        "release": "v1.2.3",
        "url": f"{PUBLIC}/api/deployments/12",
    }
    success = standin.deployments[1].statuses[-1]
    assert success["log_url"] == f"{PUBLIC}/api/deployments/12"
    assert success["environment_url"] == f"{PUBLIC}/api/apps/shop"
    assert success["auto_inactive"] is False
    assert len(success["description"]) <= 140


def test_a_failure_and_a_cancel(standin: GitHubStandIn, notifier: GitHubNotifier) -> None:
    memory: dict[str, str] = {}
    deliver(notifier, event("deployment.started"), memory)
    assert deliver(notifier, event("deployment.failed", message="x" * 300), memory).ok
    assert deliver(notifier, event("deployment.cancelled"), memory).ok
    assert [s["state"] for s in standin.deployments[0].statuses] == ["in_progress", "failure", "error"]
    assert len(standin.deployments[0].statuses[1]["description"]) == 140


def test_a_deployment_cancelled_before_it_started_is_not_told(standin: GitHubStandIn, notifier: GitHubNotifier) -> None:
    result = deliver(notifier, event("deployment.cancelled"), {})
    assert result.ok and standin.requests() == []


@pytest.mark.parametrize(
    "n",
    [
        event("release.created", deployment_id=None),  # type: ignore[arg-type]
        event("deployment.superseded"),
        event("hold.created"),
        event("deployment.started", app="no-github-app"),
        event("deployment.started", release=None),
    ],
)
def test_what_github_is_not_told(standin: GitHubStandIn, notifier: GitHubNotifier, n: Notification) -> None:
    assert deliver(notifier, n, {}).ok
    assert standin.requests() == []


def test_a_retry_after_the_status_failed_reuses_the_deployment(
    standin: GitHubStandIn, notifier: GitHubNotifier
) -> None:
    standin.script(*[Scripted(502, body={"message": "Server Error"}, path="/statuses")] * FAST.attempts)
    memory: dict[str, str] = {}
    failed = deliver(notifier, event("deployment.started"), memory)
    assert not failed.ok and "502" in failed.message
    assert memory == {"deployment:12": "1"}  # remembered although the attempt failed
    assert deliver(notifier, event("deployment.started"), memory).ok
    assert len(standin.deployments) == 1
    assert [s["state"] for s in standin.deployments[0].statuses] == ["in_progress"]


def test_a_retry_whose_first_answer_was_lost_finds_the_deployment(
    standin: GitHubStandIn, notifier: GitHubNotifier
) -> None:
    assert deliver(notifier, event("deployment.started"), {}).ok
    assert deliver(notifier, event("deployment.succeeded"), {}).ok  # nothing remembered: found on GitHub
    assert len(standin.deployments) == 1
    assert [s["state"] for s in standin.deployments[0].statuses] == ["in_progress", "success"]


def test_an_outage_is_a_failed_delivery_not_an_exception(standin: GitHubStandIn, notifier: GitHubNotifier) -> None:
    standin.outage_until = time.monotonic() + 60
    result = deliver(notifier, event("deployment.started"), {})
    assert not result.ok and "HTTP 502" in result.message and TOKEN not in result.message


def test_default_events_are_the_deployment_kinds() -> None:
    assert GitHubNotifier.default_events == frozenset(DEPLOYMENT_STATES)
    assert set(DEPLOYMENT_STATES) == {
        "deployment.started",
        "deployment.succeeded",
        "deployment.failed",
        "deployment.cancelled",
    }


def test_routed_the_events_of_apps_on_github_only(tmp_path: Path) -> None:
    config = load_text(tmp_path, ROUTING)
    github = NotifierConfig("github", "github", NoOptions(), events=frozenset(DEPLOYMENT_STATES))
    config = replace(
        config,
        github=GitHubConfig(token=TOKEN),
        apps={**config.apps, "web": replace(config.apps["web"], github="octo/web")},
        notifiers={**config.notifiers, "github": github},
        teams={**config.teams, "search": replace(config.teams["search"], notify=("chat-search", "github"))},
    )
    router = Router.from_config(config)
    assert "github" in router.notifiers_for("deployment.started", "web")  # no team lists it: still routed
    assert "github" not in router.notifiers_for("deployment.started", "search")  # listed, but not on GitHub
    assert "github" not in router.notifiers_for("deployment.started", "tool")
    assert "github" not in router.notifiers_for("hold.created", None)
    assert "github" not in router.notifiers_for("release.created", "web")  # not one of its kinds


def test_the_notifier_needs_the_github_section(tmp_path: Path) -> None:
    text = ROUTING.replace("notifiers:\n", "notifiers:\n  github: {type: github}\n", 1)
    with pytest.raises(ConfigError) as problem:
        load_text(tmp_path, text)
    assert "conveyor.yaml:2:" in str(problem.value)
    assert "notifier type 'github' needs the top-level 'github' section" in str(problem.value)


def test_made_from_the_config_with_its_credentials(standin: GitHubStandIn, tmp_path: Path) -> None:
    config = load_text(tmp_path, ROUTING)
    config = replace(
        config,
        github=GitHubConfig(api_url=standin.url, token=TOKEN),
        apps={**config.apps, "web": replace(config.apps["web"], github="octo/web")},
        public_url=PUBLIC,
    )
    notifier = GitHubNotifier.for_config(NoOptions(), config)
    try:
        assert isinstance(notifier, GitHubNotifier)
        assert notifier.repos == {"web": "octo/web"} and notifier.production == "production"
        assert notifier.deliver(event("deployment.started", app="web"), make_context()).ok
    finally:
        notifier.close()
    assert standin.requests("POST", "/repos/octo/web/deployments")
    assert GitHubNotifier.apps_concerned(config) == frozenset({"web"})
    with pytest.raises(ValueError, match="token or an app"):
        GitHubNotifier.for_config(NoOptions(), replace(config, github=GitHubConfig(webhook_secret="s")))
