"""A pipeline run for the delivery tests: real git repositories, a config with notifiers, and a
Conductor (with its notification sender) in a background thread until the test is done with it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from conveyor.config import Config, load_config
from conveyor.config.retry import RetryPolicy
from conveyor.engine.conductor import Conductor
from conveyor.notify.sender import Sender
from conveyor.store.database import Database
from conveyor.store.tables import Outbox
from tests.integration.harness import make_app_repo

# Fast enough for a test to see a receiver come back, with the production shape (doubling, capped).
FAST_RETRY = RetryPolicy(first_delay=0.05, max_delay=0.3)


def project(root: Path, body: str, apps: tuple[str, ...], environ: dict[str, str]) -> Config:
    for app in apps:
        make_app_repo(root / "repos" / app, {"README": f"{app}\n"}, f"{app}: first commit")
    path = root / "conveyor.yaml"
    path.write_text(body, encoding="utf-8")
    return load_config(path, environ)


@dataclass
class Running:
    conductor: Conductor
    sender: Sender


@contextmanager
def conductor_with_sender(config: Config, url: str, retry: RetryPolicy = FAST_RETRY) -> Iterator[Running]:
    """A conductor (never exiting on idle: notifications may still be due) and its sender, in a thread."""
    db = Database(url)
    sender = Sender(config, db, owner="test-sender", poll_interval=0.05, retry=retry)
    conductor = Conductor(config, db, concurrency=8, poll_interval=0.05, grace_seconds=5, sender=sender)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conductor.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="conductor", daemon=True)
    thread.start()
    try:
        yield Running(conductor, sender)
    finally:
        stop.set()
        thread.join(30)
        db.dispose()
    assert not thread.is_alive(), "the conductor did not stop"
    assert not errors, errors


def outbox_states(db: Database) -> dict[str, int]:
    with db.read() as session:
        return {state: n for state, n in session.execute(select(Outbox.state, func.count()).group_by(Outbox.state))}
