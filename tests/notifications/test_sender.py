"""The sender inside a running conductor: events from every writer (operations, orchestrator, holds)
reach their notifiers, threaded per release; a notifier that raises is a failed attempt and is disabled,
nothing more."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.notifiers.base import DeliveryContext, DeliveryResult, Notification, Notifier
from conveyor.notifiers.fake import FakeNotifier
from conveyor.notify.outbox import ClaimedDelivery
from conveyor.notify.routing import install
from conveyor.notify.sender import Sender
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Event, Outbox
from tests.integration.harness import deployment_state, run_until_idle, wait_for
from tests.notifications.running import FAST_RETRY, conductor_with_sender, outbox_states, project

CONFIG = """\
environments: [integration, staging, production]
notifiers:
  chat: {type: fake, threaded: true}
  audit: {type: fake, global: true, events: [deployment.failed, hold.created, hold.lifted]}
teams: {publishing: {notify: [chat]}}
defaults:
  deploy: {driver: fake, duration: 0.05}
  checks: [{name: smoke, type: fake, count: 1}]
apps:
  web:
    repo: ./repos/web
    team: publishing
    environments: {staging: {deploy: {outcome: fail}}}
  api: {repo: ./repos/api, team: publishing, tier: manual, reason: migrations run by hand}
"""


@pytest.mark.timeout(90)
def test_every_writer_notifies_and_a_chat_threads_by_release(tmp_path: Path, db_url: str) -> None:
    config = project(tmp_path, CONFIG, ("web", "api"), {})
    db = Database(db_url)
    install(db, config)
    try:
        with conductor_with_sender(config, db_url) as running:
            ops = Operations(config, db)
            web, api = ops.create_release("web").release_id, ops.create_release("api").release_id

            def settled() -> bool:
                with db.read() as session:
                    waiting = session.scalars(select(Event.id).where(Event.kind == "promotion.waiting")).first()
                return waiting is not None and deployment_state(db, "web", "staging", web) == "failed"

            wait_for(settled, 30, "web failed in staging and api waiting for promotion")
            ops.unblock("web", "staging", "fixed the staging database by hand")
            wait_for(lambda: set(outbox_states(db)) == {"delivered"}, 20, "every notification delivered")
            chat, audit = running.sender.notifiers["chat"], running.sender.notifiers["audit"]
        assert isinstance(chat, FakeNotifier) and isinstance(audit, FakeNotifier)
        kinds: dict[int, list[str]] = defaultdict(list)
        threads: dict[int, set[str | None]] = defaultdict(set)
        for delivery in chat.delivered():
            assert delivery.notification.release is not None
            kinds[delivery.notification.release.id].append(delivery.notification.kind)
            threads[delivery.notification.release.id].add(delivery.thread)
        assert kinds[web] == [
            "release.created",
            "deployment.started",
            "deployment.succeeded",
            "deployment.started",
            "deployment.failed",
            "hold.created",
            "hold.lifted",
        ]
        assert kinds[api] == [
            "release.created",
            *["deployment.started", "deployment.succeeded"] * 2,
            "promotion.waiting",
        ]
        # each release's messages went to one thread, the one its first message started
        first = {
            d.notification.release.id: d.ctx.delivery_id for d in reversed(chat.delivered()) if d.notification.release
        }
        assert threads == {web: {first[web]}, api: {first[api]}}
        assert [d.notification.kind for d in audit.delivered()] == ["deployment.failed", "hold.created", "hold.lifted"]
    finally:
        db.dispose()


def test_a_worker_exiting_when_idle_first_delivers_what_is_due(tmp_path: Path, db_url: str) -> None:
    config = project(tmp_path, CONFIG, ("web", "api"), {})
    db = Database(db_url)
    install(db, config)
    try:
        Operations(config, db).create_release("api")
        run_until_idle(config, db_url)  # the conductor exactly as `worker --exit-when-idle` builds it
        assert outbox_states(db) == {"delivered": 6}  # release.created, started/succeeded x 2, promotion.waiting
    finally:
        db.dispose()


def test_rows_being_claimed_count_as_busy_so_a_drain_waits_for_them(tmp_path: Path, db_url: str) -> None:
    """Between the claim's commit (the rows are leased, so no longer due) and their hand-over to the
    pool, the sender must already look busy, or a draining stop() sees nothing to wait for and leaves."""
    config = project(tmp_path, CONFIG, ("web",), {})
    db = Database(db_url)
    install(db, config)
    sender = Sender(config, db, owner="test", poll_interval=0.02, retry=FAST_RETRY)
    seen_busy: list[bool] = []
    try:
        Operations(config, db).create_release("web")
        claim = sender.queue.claim

        def watched_claim(notifiers: Collection[str], limit: int) -> list[ClaimedDelivery]:
            claimed = claim(notifiers, limit)
            seen_busy.append(sender._busy())
            return claimed

        sender.queue.claim = watched_claim  # type: ignore[method-assign]
        sender.start()
        sender.stop(drain=5.0)
        assert seen_busy and all(seen_busy)
        assert outbox_states(db) == {"delivered": 1}  # release.created, to the team's chat
    finally:
        db.dispose()


class Exploding(Notifier):
    name = "exploding"

    def __init__(self) -> None:
        self.closed = False

    def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
        raise RuntimeError("a bug in a notifier plugin")

    def close(self) -> None:
        self.closed = True


def test_a_notifier_that_raises_is_a_failed_attempt_and_is_disabled(tmp_path: Path, db_url: str) -> None:
    config = project(tmp_path, CONFIG.replace("type: fake, threaded: true", "type: log"), ("web",), {})
    db = Database(db_url)
    install(db, config)
    exploding = Exploding()
    sender = Sender(config, db, owner="test", poll_interval=0.02, retry=FAST_RETRY, notifiers={"chat": exploding})
    try:
        Operations(config, db).create_release("web")
        sender.start()
        wait_for(lambda: "chat" in sender.disabled, 10, "the notifier to be disabled")
        sender.tick()  # a pass after disabling claims nothing for it, however due its rows are
        sender.stop()
        assert exploding.closed
        with db.read() as session:
            row = session.scalars(select(Outbox).where(Outbox.notifier == "chat")).one()
            disabled = session.scalars(select(Event).where(Event.kind == "notifier.disabled")).one()
        assert (row.state, row.attempts, row.last_error) == (
            "pending",
            1,
            "the notifier raised RuntimeError: a bug in a notifier plugin",
        )
        assert disabled.payload == {"notifier": "chat"}
        assert disabled.message == "notifier chat disabled: it raised RuntimeError: a bug in a notifier plugin"
    finally:
        sender.stop()
        db.dispose()


def test_no_notifiers_no_sender_thread(tmp_path: Path, db_url: str) -> None:
    config = project(tmp_path, "defaults: {deploy: {driver: fake}}\n", (), {})
    db = Database(db_url)
    sender = Sender(config, db, owner="test")
    sender.start()
    assert not sender.enabled and sender._thread is None
    sender.stop()
    db.dispose()
