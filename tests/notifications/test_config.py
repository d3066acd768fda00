"""The ``notifiers`` section and team ``notify`` lists: resolved, or every problem at its FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import ConfigError
from conveyor.domain.event_kinds import NOTIFYING_KINDS
from conveyor.notifiers.webhook import WebhookOptions
from tests.notifications.configs import load_text

APPS = """\
defaults:
  deploy: {driver: fake}
apps:
  web: {repo: ./web, team: publishing}
"""


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def problems(folder: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    """Problems as ``conveyor.yaml:LINE:COL: message`` (the file is loaded by its relative name)."""
    with pytest.raises(ConfigError) as caught:
        load_text(Path("."), text, environ)
    return [str(problem) for problem in caught.value.problems]


def test_notifiers_are_resolved(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """\
notifiers:
  chat:
    type: webhook
    url: https://hooks.example.org/conveyor
    secret: ${HOOK_SECRET}
    timeout: 5s
    events: [deployment.failed, deployment.succeeded]
  audit: {type: log, global: true}
teams:
  publishing: {notify: [chat]}
"""
        + APPS,
        {"HOOK_SECRET": "from-the-environment"},
    )
    chat, audit = config.notifiers["chat"], config.notifiers["audit"]
    assert (chat.type, chat.is_global, chat.events) == ("webhook", False, {"deployment.failed", "deployment.succeeded"})
    assert isinstance(chat.options, WebhookOptions)
    assert (chat.options.url, chat.options.timeout) == ("https://hooks.example.org/conveyor", 5.0)
    assert chat.options.secret.get_secret_value() == "from-the-environment"
    assert (audit.type, audit.is_global, audit.events) == ("log", True, NOTIFYING_KINDS)
    assert config.teams["publishing"].notify == ("chat",)


def test_a_literal_secret_is_still_redacted(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        "notifiers:\n  chat: {type: webhook, url: 'https://h.example.org/', secret: written-in-the-file}\n"
        "teams: {publishing: {notify: [chat]}}\n" + APPS,
    )
    assert config.redact("signing with written-in-the-file") == "signing with ********"


def test_no_notifiers_is_fine(tmp_path: Path) -> None:
    config = load_text(tmp_path, "teams: {publishing: {notify: []}}\n" + APPS)
    assert config.notifiers == {}


def test_every_problem_at_its_place(tmp_path: Path) -> None:
    text = """\
notifiers:
  chat:
    type: webhook
    url: ftp://hooks.example.org/x
    secret: ${HOOK_SECRET}
    timout: 5s
  nosecret:
    type: webhook
    url: https://hooks.example.org/x
  pager:
    type: pagr
  audit:
    type: log
    global: maybe
    events: [deployment.faild]
teams:
  publishing:
    notify: [chatt, audit, nope]
"""
    assert problems(tmp_path, text + APPS, {"HOOK_SECRET": "topsecret"}) == [
        "conveyor.yaml:4:10: 'url' in notifier 'chat' (type 'webhook'): "
        "must be an http:// or https:// URL, got 'ftp://hooks.example.org/x'",
        "conveyor.yaml:6:5: unknown key 'timout' in notifier 'chat' (type 'webhook') (did you mean 'timeout'?)",
        "conveyor.yaml:7:3: missing required key 'secret' in notifier 'nosecret' (type 'webhook')",
        "conveyor.yaml:11:11: unknown notifier type 'pagr' (known: fake, github, log, sentry, webhook)",
        "conveyor.yaml:14:13: 'global' in notifier 'audit': expected true or false",
        "conveyor.yaml:15:14: unknown event kind 'deployment.faild' (did you mean 'deployment.failed'?) "
        "(see docs/notifications.md)",
        "conveyor.yaml:18:14: unknown notifier 'chatt' (did you mean 'chat'?) (known: chat, nosecret, pager, audit)",
        "conveyor.yaml:18:28: unknown notifier 'nope' (known: chat, nosecret, pager, audit)",
    ]


def test_a_team_may_only_name_configured_notifiers(tmp_path: Path) -> None:
    assert problems(tmp_path, "teams:\n  publishing:\n    notify: [chat]\n" + APPS) == [
        "conveyor.yaml:3:14: unknown notifier 'chat' (known: none)"
    ]


def test_the_secret_is_never_printed(tmp_path: Path) -> None:
    text = "notifiers:\n  chat: {type: webhook, url: '${HOOK_SECRET}', secret: '${HOOK_SECRET}'}\n"
    found = problems(tmp_path, text + "teams: {publishing: {notify: [chat]}}\n" + APPS, {"HOOK_SECRET": "topsecret"})
    assert found == [
        "conveyor.yaml:2:30: 'url' in notifier 'chat' (type 'webhook'): "
        "must be an http:// or https:// URL, got '********'"
    ]


def test_a_bad_timeout(tmp_path: Path) -> None:
    text = "notifiers:\n  chat: {type: webhook, url: 'https://h.example.org/', secret: k, timeout: 10 parsecs}\n"
    [problem] = problems(tmp_path, text + "teams: {publishing: {notify: [chat]}}\n" + APPS)
    assert problem.startswith("conveyor.yaml:2:76: 'timeout' in notifier 'chat' (type 'webhook'): invalid duration")
