"""Webhooks to a real receiver on 127.0.0.1 while a pipeline runs.

The receiver is down (port closed), answers 500, or is slow (holds requests past the webhook's
timeout). Whatever it does, the deployments reach production without waiting on it; once it is back,
every notification arrives, signed, with the same delivery id it had on every retry, and each
release's notifications arrive in event order.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.notify.routing import install
from conveyor.notify.sender import IN_FLIGHT_GRACE, Sender
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from conveyor.store.tables import Outbox, Step
from tests.integration.harness import deployment_state, free_port, wait_for
from tests.notifications.receiver import Mode, Receiver
from tests.notifications.running import conductor_with_sender, outbox_states, project

SECRET = "webhook-secret-for-tests"
ENVIRONMENTS = ("integration", "staging", "production")
TIMEOUT = 1.0  # the webhook's timeout; no step may wait anywhere near this long
CONFIG = """\
environments: [integration, staging, production]
notifiers:
  hook: {{type: webhook, url: "{url}", secret: "${{HOOK_SECRET}}", timeout: {timeout}}}
teams: {{publishing: {{notify: [hook]}}}}
defaults:
  deploy: {{driver: fake, duration: 0.05}}
  checks: [{{name: smoke, type: fake, count: 1}}]
apps:
  web: {{repo: ./repos/web, team: publishing}}
  api: {{repo: ./repos/api, team: publishing}}
"""
# per release, what the team hears, in order
EXPECTED = ["release.created"] + [kind for _ in ENVIRONMENTS for kind in ("deployment.started", "deployment.succeeded")]


def migrate(url: str) -> None:
    db = Database(url)
    upgrade(db)
    db.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(free_port(), SECRET, hold_seconds=3 * TIMEOUT)
    yield receiver
    receiver.close()


def run_against(receiver: Receiver, broken: Mode | None, tmp_path: Path, url: str) -> None:
    """``broken``: how the receiver misbehaves while the pipeline runs; None means its port is closed."""
    if broken is not None:
        receiver.mode = broken
        receiver.start()
    config = project(
        tmp_path, CONFIG.format(url=receiver.url, timeout=TIMEOUT), ("web", "api"), {"HOOK_SECRET": SECRET}
    )
    db = Database(url)
    install(db, config)
    try:
        with conductor_with_sender(config, url):
            started = time.monotonic()
            ops = Operations(config, db)
            releases = {app: ops.create_release(app).release_id for app in ("web", "api")}

            def in_production() -> bool:
                return all(deployment_state(db, app, "production", r) == "succeeded" for app, r in releases.items())

            wait_for(in_production, 30, "both releases in production")
            elapsed = time.monotonic() - started
            assert_no_step_waited(db)
            # The receiver was being tried meanwhile, and nothing got through.
            assert not receiver.accepted()
            with db.read() as session:
                tried = session.scalars(select(Outbox).where(Outbox.attempts > 0)).all()
            assert tried and all(row.last_error or row.lease_owner for row in tried if row.state == "pending")
            # 14 notifications: waiting on each for a webhook timeout would take far longer than this
            assert elapsed < 5, f"the pipeline took {elapsed:.1f}s"

            # The receiver comes back: everything arrives.
            if broken is None:
                receiver.start()
            else:
                receiver.mode = "ok"
            wait_for(lambda: outbox_states(db) == {"delivered": 14}, 20, "every notification delivered")
        assert_arrived_in_order(receiver, db, set(releases.values()))
    finally:
        db.dispose()


def assert_no_step_waited(db: Database) -> None:
    """Every step started sooner than one webhook timeout after it was queued: none waited for a delivery.
    (The bound is the timeout itself: the first claims of a fresh worker can take a few hundred
    milliseconds on a busy machine, which says nothing about notifications.)"""
    with db.read() as session:
        steps = session.scalars(select(Step)).all()
    assert len(steps) == 12  # 2 apps x 3 environments x (deploy + smoke)
    waits = [(s.started_at - s.due_at).total_seconds() for s in steps if s.started_at]
    assert len(waits) == 12 and max(waits) < TIMEOUT, waits


def assert_arrived_in_order(receiver: Receiver, db: Database, release_ids: set[int]) -> None:
    accepted = receiver.accepted()
    with db.read() as session:
        rows = session.scalars(select(Outbox)).all()
    assert all(r.signature_ok for r in receiver.received())
    assert [r.standard_error for r in receiver.received()] == [None] * len(receiver.received())
    # one accepted request per outbox row, under the row's delivery id
    assert sorted(r.delivery_id for r in accepted) == sorted(row.delivery_id for row in rows)
    # every earlier, failed attempt used the same delivery id and the same bytes as the one that got through
    body_of = {r.delivery_id: r.body for r in accepted}
    for request in receiver.received():
        assert body_of[request.delivery_id] == request.body
    by_release: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for request in accepted:
        payload = request.payload
        assert payload["team"] == "publishing" and request.event_kind == payload["kind"]
        by_release[payload["release"]["id"]].append((payload["id"], payload["kind"]))
    assert set(by_release) == release_ids
    for events in by_release.values():
        assert [event_id for event_id, _ in events] == sorted(event_id for event_id, _ in events)
        assert [kind for _, kind in events] == EXPECTED


@pytest.mark.timeout(90)
def test_a_receiver_that_is_down(receiver: Receiver, tmp_path: Path, db_url: str) -> None:
    run_against(receiver, None, tmp_path, db_url)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("broken", ["error", "slow"])
def test_a_receiver_that_fails_or_is_slow(receiver: Receiver, broken: Mode, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    migrate(url)
    run_against(receiver, broken, tmp_path, url)
    if broken == "error":
        retried = [r for r in receiver.received() if r.answered == 500]
        assert retried, "the receiver was never tried while it answered 500"


@pytest.mark.timeout(60)
def test_stopping_hands_a_slow_delivery_back_instead_of_waiting_for_it(tmp_path: Path, db_url: str) -> None:
    """A receiver holding a request for the webhook's whole timeout (10 s here) does not hold up a
    stopping process: after the short grace the row is pending again, unleased, and the next sender
    delivers it under the same delivery id."""
    receiver = Receiver(free_port(), SECRET, mode="slow", hold_seconds=15).start()
    config = project(tmp_path, CONFIG.format(url=receiver.url, timeout="10s"), ("web", "api"), {"HOOK_SECRET": SECRET})
    db = Database(db_url)
    install(db, config)
    try:
        Operations(config, db).create_release("web")  # release.created: one row for the team's hook
        first = Sender(config, db, owner="first", poll_interval=0.02)
        first.start()
        wait_for(lambda: len(receiver.received()) == 1, 10, "the slow receiver holding the first attempt")
        started = time.monotonic()
        first.stop()
        assert time.monotonic() - started < IN_FLIGHT_GRACE + 2.0  # not the webhook's 10 s timeout
        with db.read() as session:
            row = session.scalars(select(Outbox)).one()
        assert (row.state, row.lease_owner, row.attempts) == ("pending", None, 1)

        receiver.mode = "ok"
        second = Sender(config, db, owner="second", poll_interval=0.02)
        second.start()
        wait_for(lambda: outbox_states(db) == {"delivered": 1}, 10, "the row delivered by the next sender")
        second.stop()
        assert {r.delivery_id for r in receiver.received()} == {row.delivery_id}
    finally:
        receiver.close()
        db.dispose()
