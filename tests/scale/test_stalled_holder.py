"""A process that stalls (here: stops itself with SIGSTOP) while it holds a database lock must not stop
the others: PostgreSQL ends its idle transaction after the idle-transaction timeout and frees the lock.

Before this, a worker paused in the middle of a planner pass kept the planner's advisory lock for as long
as it was paused, and no other worker could promote, start or finish anything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from conveyor.store.database import Database

TIMEOUT = 3.0  # the stalled process's idle-transaction timeout, in seconds

PLANNER_HOLDER = """
import os, signal, sys
from conveyor.store.database import Database
db = Database(sys.argv[1], idle_transaction_timeout=float(sys.argv[2]))
with db.planning() as acquired:
    print("held" if acquired else "refused", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
"""

ROW_HOLDER = """
import os, signal, sys
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from conveyor.store.database import Database
db = Database(sys.argv[1], idle_transaction_timeout=float(sys.argv[2]))
with db.write() as session:
    session.execute(text("UPDATE alembic_version SET version_num = version_num"))
    print("held", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
"""


def _stalled(script: str, url: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", script, url, str(TIMEOUT)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


@pytest.fixture
def reaped() -> Iterator[list[subprocess.Popen[str]]]:
    """Children to wake and end however the test ends."""
    children: list[subprocess.Popen[str]] = []
    yield children
    for child in children:
        child.send_signal(signal.SIGCONT)
        child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_a_process_stalled_mid_pass_does_not_keep_the_planner_lock(
    postgres_store: Database, postgres_url: str, reaped: list[subprocess.Popen[str]]
) -> None:
    reaped.append(_stalled(PLANNER_HOLDER, postgres_url))
    stalled_at = time.monotonic()
    with postgres_store.planning() as acquired:
        assert not acquired  # held by the stalled process for now
    while True:
        with postgres_store.planning() as acquired:
            if acquired:
                break
        assert time.monotonic() - stalled_at < TIMEOUT + 10, "the stalled process kept the planner lock"
        time.sleep(0.1)


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_a_process_stalled_mid_write_does_not_keep_its_row_locks(
    postgres_store: Database, postgres_url: str, reaped: list[subprocess.Popen[str]]
) -> None:
    reaped.append(_stalled(ROW_HOLDER, postgres_url))
    stalled_at = time.monotonic()
    with pytest.raises(OperationalError, match="lock timeout"), postgres_store.write() as session:
        session.execute(text("SET LOCAL lock_timeout = '100ms'"))  # held by the stalled process for now
        session.execute(text("UPDATE alembic_version SET version_num = version_num"))
    with postgres_store.write() as session:  # waits for the row until the server ends the stalled transaction
        session.execute(text("UPDATE alembic_version SET version_num = version_num"))
    assert time.monotonic() - stalled_at < TIMEOUT + 10


@pytest.mark.postgres
def test_an_operators_own_idle_timeout_in_the_url_is_kept(postgres_url: str) -> None:
    db = Database(f"{postgres_url}?options=-c%20idle_in_transaction_session_timeout%3D123000")
    try:
        with db.read() as session:
            assert session.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "123s"
    finally:
        db.dispose()
    db = Database(postgres_url, idle_transaction_timeout=7)
    try:
        with db.read() as session:
            assert session.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "7s"
    finally:
        db.dispose()
