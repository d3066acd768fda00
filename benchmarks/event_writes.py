"""Measuring how fast many processes can record events on one PostgreSQL database: every transaction
records a few events and nothing else, the worst case for anything that serialises event writers (such
as sealing them into the audit chain)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from conveyor.store.database import Database
from conveyor.store.migrate import upgrade

WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from conveyor.store.database import Database
    from conveyor.store.events import About, record_events

    db = Database(sys.argv[1], pool_size=1)
    transactions, events, start_at = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    with db.read():
        pass  # connect before the start
    time.sleep(max(0.0, start_at - time.time()))
    for t in range(transactions):
        with db.write() as session:
            about = [About(f"event {t}.{i}", "app000", "production") for i in range(events)]
            record_events(session, "step.finished", at=datetime.now(UTC), actor="bench", about=about)
    print(time.time())
    db.dispose()
    """
)


def event_transactions_per_second(url: str, *, writers: int = 8, transactions: int = 100, events: int = 3) -> float:
    """Transactions per second, each recording ``events`` events, from ``writers`` processes at once."""
    db = Database(url)
    upgrade(db)
    db.dispose()
    start_at = time.time() + 3.0  # every writer has started and connected by then
    argv = [sys.executable, "-c", WRITER, url, str(transactions), str(events), str(start_at)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(writers)]
    ends = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"an event writer failed (exit {p.returncode})")
        ends.append(float(out.strip()))
    return writers * transactions / (max(ends) - start_at)
