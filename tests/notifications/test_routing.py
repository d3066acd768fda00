"""Who hears about an event: the app's team's notifiers, then the global ones, each for its kinds."""

from __future__ import annotations

import pytest

from conveyor.domain.event_kinds import NOTIFYING_KINDS
from conveyor.notify.routing import Router
from tests.notifications.configs import ROUTING, load_text


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    return Router.from_config(load_text(tmp_path_factory.mktemp("routing"), ROUTING))


@pytest.mark.parametrize(
    ("kind", "app", "notifiers"),
    [
        ("deployment.succeeded", "web", ("chat-publishing", "audit")),  # audit is global and in the list: once
        ("deployment.failed", "web", ("chat-publishing", "audit", "pager")),
        ("deployment.succeeded", "search", ("audit",)),  # chat-search only takes failures
        ("deployment.failed", "search", ("chat-search", "audit", "pager")),
        ("deployment.failed", "tool", ("audit", "pager")),  # a team with no notify list
        ("deployment.failed", "no-such-app", ("audit", "pager")),  # an app gone from the config
        ("hold.lifted", None, ("audit",)),  # no app: global notifiers only
        ("hold.created", None, ("audit", "pager")),
        ("step.finished", "web", ("steps",)),  # steps notify only a notifier that asks for them
        ("step.started", "web", ()),
        ("deployment.waiting", "web", ()),
    ],
)
def test_routing(router: Router, kind: str, app: str | None, notifiers: tuple[str, ...]) -> None:
    assert router.notifiers_for(kind, app) == notifiers


def test_the_default_kinds_are_what_a_person_wants_to_hear_about() -> None:
    assert {
        "release.created",
        "release.ci_failed",
        "deployment.started",
        "deployment.succeeded",
        "deployment.failed",
        "deployment.superseded",
        "deployment.cancelled",
        "rollback.queued",
        "promotion.waiting",
        "hold.created",
        "hold.lifted",
        "hold.overridden",
        "error.new_issue",
        "error.spike",
    } == NOTIFYING_KINDS
    assert not any(kind.startswith("step.") for kind in NOTIFYING_KINDS)


def test_team_of_an_app(router: Router) -> None:
    assert (router.team("web"), router.team("no-such-app"), router.team(None)) == ("publishing", None, None)


def test_no_notifiers_no_routes() -> None:
    assert Router().notifiers_for("deployment.failed", "web") == ()
