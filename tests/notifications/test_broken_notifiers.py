"""A notifier never changes a deployment's outcome, even one whose plugin cannot be built or exits while
delivering: it is disabled with one error line and an event, and everything else goes on."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from sqlalchemy import select

from conveyor.notifiers.fake import FakeNotifier
from conveyor.notify.routing import install
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Event
from conveyor.web.metrics import registry_for
from tests.integration.harness import deployment_state, wait_for
from tests.misbehaving import ExitingNotifier, register_misbehaving_plugins
from tests.notifications.running import conductor_with_sender, outbox_states, project

CONFIG = """\
environments: [integration, production]
notifiers:
  pager: {type: unbuildable, global: true}
  chat: {type: exiting}
  audit: {type: fake, global: true}
teams: {publishing: {notify: [chat]}}
defaults:
  deploy: {driver: fake, duration: 0.05}
apps:
  web: {repo: ./repos/web, team: publishing}
"""


@pytest.mark.timeout(90)
def test_broken_notifiers_are_disabled_and_deploys_go_on(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    register_misbehaving_plugins(monkeypatch)
    config = project(tmp_path, CONFIG, ("web",), {})
    db = Database(db_url)
    install(db, config)
    caplog.set_level(logging.INFO, logger="conveyor.notify.sender")
    try:
        with conductor_with_sender(config, db_url) as running:
            release = Operations(config, db).create_release("web").release_id
            wait_for(lambda: deployment_state(db, "web", "production", release) == "succeeded", 30, "production")
            wait_for(lambda: outbox_states(db).get("delivered", 0) >= 5, 20, "the audit notifier's deliveries")
            assert set(running.sender.disabled) == {"pager", "chat"}
            audit = running.sender.notifiers["audit"]
        assert isinstance(audit, FakeNotifier)
        kinds = [d.notification.kind for d in audit.delivered()]
        assert kinds.count("deployment.succeeded") == 2
        assert ExitingNotifier.calls == 1  # tried once, then disabled: not retried in this process
        with db.read() as session:
            events = session.scalars(select(Event).where(Event.kind == "notifier.disabled").order_by(Event.id))
            disabled = {e.payload["notifier"]: e.message for e in events}
        assert disabled == {
            "pager": "notifier pager disabled: it could not be created: SystemExit: no configuration for the"
            " chat service",
            "chat": "notifier chat disabled: it raised SystemExit: 1",
        }
        metrics = generate_latest(registry_for(db, config)).decode()
        assert "conveyor_notifiers_disabled_total 2.0" in metrics.splitlines()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            "notifier pager disabled: it could not be created: SystemExit: no configuration for the chat service;"
            " deployments go on without it",
            "notifier chat disabled: it raised SystemExit: 1; deployments go on without it",
        ]
        assert all(r.exc_info is None for r in errors)  # one line each; the traceback is at debug level
    finally:
        db.dispose()
