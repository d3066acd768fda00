"""Each notifier's ``retry`` in conveyor.yaml: read with durations, defaulted key by key, reported at its
place when wrong, and applied by the outbox to that notifier's rows alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from conveyor.config import ConfigError
from conveyor.config.retry import RetryPolicy
from conveyor.notify.outbox import OutboxQueue
from conveyor.notify.routing import install
from conveyor.notify.sender import Sender
from conveyor.store.database import Database
from tests.notifications.configs import load_text
from tests.notifications.test_outbox import DOWN, T0, Clock, add_event, rows

APPS = """\
teams: {publishing: {notify: [chat]}}
defaults:
  deploy: {driver: fake}
apps:
  web: {repo: ./web, team: publishing}
"""


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def test_retry_is_read_with_durations_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """\
notifiers:
  chat:
    type: webhook
    url: https://chat.example/hook
    secret: ${CHAT_SECRET}
    retry: {first_delay: 2s, max_delay: 10m, max_attempts: 50, max_age: 48h}
  pager:
    type: fake
    global: true
    retry:
      first_delay: 5
      max_attempts: 3
  audit: {type: log, global: true}
  quiet: {type: log, retry: }
"""
        + APPS,
        {"CHAT_SECRET": "from-the-environment"},
    )
    policies = {name: notifier.retry for name, notifier in config.notifiers.items()}
    assert policies == {
        "chat": RetryPolicy(first_delay=2.0, max_delay=600.0, max_attempts=50, max_age=48 * 3600.0),
        "pager": RetryPolicy(first_delay=5.0, max_attempts=3),
        "audit": RetryPolicy(),
        "quiet": RetryPolicy(),
    }
    assert policies["chat"].jitter == RetryPolicy().jitter


def test_a_bad_retry_block_hides_no_other_problem(tmp_path: Path) -> None:
    text = """\
notifiers:
  chat:
    type: webhook
    url: https://chat.example/hook
    secret: s
    timout: 5s
    events: [deployment.faild]
    retry:
      first_delay: 2s
      max_delay: 1s
      max_attempts: 0
"""
    with pytest.raises(ConfigError) as caught:
        load_text(Path("."), text + APPS)
    assert [str(problem) for problem in caught.value.problems] == [
        "conveyor.yaml:6:5: unknown key 'timout' in notifier 'chat' (type 'webhook') (did you mean 'timeout'?)",
        "conveyor.yaml:7:14: unknown event kind 'deployment.faild' (did you mean 'deployment.failed'?) "
        "(see docs/notifications.md)",
        "conveyor.yaml:10:18: 'max_delay' in 'retry' of notifier 'chat': must be at least first_delay (2s), got 1s",
        "conveyor.yaml:11:21: 'max_attempts' in 'retry' of notifier 'chat': input should be greater than or equal to 1",
    ]


# -- applied by the outbox ----------------------------------------------------------------------------------

TWO_POLICIES = """\
notifiers:
  chat: {type: fake, retry: {first_delay: 30s, max_attempts: 2, max_age: 1h}}
  audit: {type: fake, global: true}
"""


def configured_queue(tmp_path: Path, db: Database, clock: Clock, notifiers: str = TWO_POLICIES) -> OutboxQueue:
    """The outbox queue a sender builds from ``notifiers``, with events routed by that same config."""
    config = load_text(tmp_path, notifiers + APPS)
    install(db, config)
    return Sender(config, db, owner="test-sender", clock=clock).queue


def test_each_notifier_is_retried_and_given_up_by_its_own_policy(tmp_path: Path, db: Database) -> None:
    clock = Clock()
    q = configured_queue(tmp_path, db, clock)
    add_event(db, "deployment.failed", None)
    for _ in range(2):
        claimed = q.claim(["chat", "audit"], 10)
        assert sorted(c.notifier for c in claimed) == ["audit", "chat"]
        for delivery in claimed:
            assert q.finish(delivery, DOWN)
        clock.advance(30)
    chat, audit = (next(r for r in rows(db) if r.notifier == name) for name in ("chat", "audit"))
    assert (chat.state, chat.attempts, chat.last_error) == ("failed", 2, DOWN.message)
    assert (audit.state, audit.attempts) == ("pending", 2)
    # the default policy's second wait, from the attempt at 30 s: 2 s, shortened by at most a fifth
    assert T0 + timedelta(seconds=31.6) <= audit.next_attempt_at <= T0 + timedelta(seconds=32)


def test_the_first_wait_is_the_notifiers_own(tmp_path: Path, db: Database) -> None:
    clock = Clock()
    q = configured_queue(tmp_path, db, clock)
    add_event(db, "deployment.failed", None)
    for delivery in q.claim(["chat", "audit"], 10):
        assert q.finish(delivery, DOWN)
    waits = {r.notifier: r.next_attempt_at - T0 for r in rows(db)}
    assert timedelta(seconds=24) <= waits["chat"] <= timedelta(seconds=30)
    assert timedelta(seconds=0.8) <= waits["audit"] <= timedelta(seconds=1)


def test_stale_rows_are_given_up_by_their_notifiers_max_age(tmp_path: Path, db: Database) -> None:
    """``retired`` was removed from the config: no sender claims its rows, the default max_age ends them."""
    clock = Clock()
    configured_queue(tmp_path, db, clock, TWO_POLICIES + "  retired: {type: fake, global: true}\n")
    add_event(db, "deployment.failed", None)
    q = configured_queue(tmp_path, db, clock)
    clock.advance(2 * 3600)
    assert q.give_up_stale() == 1
    assert {r.notifier: r.state for r in rows(db)} == {"chat": "failed", "audit": "pending", "retired": "pending"}
    assert next(r.last_error for r in rows(db) if r.notifier == "chat") == "gave up 1h after the event"
    clock.advance(23 * 3600)
    assert q.give_up_stale() == 2
    assert {r.state for r in rows(db)} == {"failed"}


def test_a_policy_passed_in_overrides_every_notifiers_own(tmp_path: Path, db: Database) -> None:
    config = load_text(tmp_path, TWO_POLICIES + APPS)
    fast = RetryPolicy(first_delay=0.05, max_delay=0.3)
    queue = Sender(config, db, owner="test-sender", retry=fast).queue
    assert (queue.policy("chat"), queue.policy("audit")) == (fast, fast)
