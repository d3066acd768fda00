"""Step logs stay bounded however much a deploy prints, and what is kept is readable.

A real ``command`` deploy prints 50 MB; the worker's resident memory and the database grow by a bounded
amount (the head, a rolling tail, what is in flight), and the log read back has its head, a line saying
how much was cut, and its tail up to the last line printed.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from conveyor.engine.step_log import HEAD_CHARS, TAIL_CHARS
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.step_logs import read_step_log
from conveyor.store.tables import Step, StepLogChunk
from tests.integration.harness import deployments, load, make_app_repo, run_until_idle, write_config

MB = 1024 * 1024
LINES = 500_000  # of 100 characters with the newline: 50 MB
CHATTY = f"""\
import sys
out = sys.stdout
for n in range({LINES}):
    out.write("line %07d %s\\n" % (n, "x" * 86))
out.write("the end\\n")
"""

CONFIG = """\
environments: [production]
teams: {{shop: {{}}}}
apps:
  web:
    repo: ./repos/web
    team: shop
    deploy: {{driver: command, argv: [{python}, {script}], timeout: 5m}}
"""


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """The highest resident set seen while the block runs, sampled every 20 ms."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def database_bytes(db: Database, url: str) -> int:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with db.read() as session:
        return int(session.scalar(text("SELECT pg_total_relation_size('step_log_chunks')")) or 0)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident set from /proc")
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_deploy_printing_50_mb_keeps_memory_and_database_bounded(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "web")
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY, encoding="utf-8")
    config = load(write_config(tmp_path, CONFIG.format(python=sys.executable, script=script)))
    db = Database(db_url)
    try:
        Operations(config, db).create_release("web")
        before_db = database_bytes(db, db_url)
        with PeakRss() as rss:
            before_rss = rss.peak
            run_until_idle(config, db_url, timeout=240, lease_seconds=3)  # a heartbeat (and a flush) every second
        grown_rss, grown_db = rss.peak - before_rss, database_bytes(db, db_url) - before_db

        [(deployment, _)] = deployments(db, "web")
        assert deployment.state == "succeeded"
        with db.read() as session:
            step_id = session.scalars(select(Step.id).where(Step.deployment_id == deployment.id)).one()
            kept = session.scalar(select(func.sum(func.length(StepLogChunk.text))))
            log = read_step_log(session, step_id)
        assert grown_rss < 60 * MB, f"the worker grew by {grown_rss / MB:.0f} MB"
        assert grown_db < 8 * MB, f"the database grew by {grown_db / MB:.1f} MB"
        assert kept is not None and kept <= HEAD_CHARS + 2 * TAIL_CHARS + 16 * 1024
        lines = log.splitlines()
        assert "$ " in lines[1] and "line 0000000" in lines[2]  # the head: the command, the first lines
        cut = [line for line in lines if line.startswith("[... ") and line.endswith(" characters cut ...]")]
        assert len(cut) == 1
        assert int(cut[0].split()[1].replace(",", "")) > 40 * MB
        assert lines[-2].endswith(f"line {LINES - 1:07d} {'x' * 86}") and lines[-1].endswith("the end")
    finally:
        db.dispose()
