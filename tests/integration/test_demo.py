"""`conveyor demo --once` end to end: real git repositories, real processes, real HTTP checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.store.database import Database
from conveyor.store.tables import Placement


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_demo_tells_the_whole_story_and_cleans_up(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # piped: lines are not wrapped
    result = subprocess.run(
        [sys.executable, "-m", "conveyor", "demo", "--once", "--keep", str(keep)],
        capture_output=True, text=True, timeout=170, env=env,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    for expected in (
        "web and api never deployed to the same environment at once",
        "failed staging, was blocked; production kept ",
        "blocked since",
        "conveyor unblock api --env staging",
        "hold.lifted",
        "the block lifted, production runs the fix",
        "conveyor rollback api --env production",
        "vetoed: rolled back by demo at",
        "is vetoed there and will not be started there again on its own",
        "demo complete",
    ):
        assert expected in out, f"missing {expected!r} in:\n{out[-4000:]}"
    assert "Traceback" not in result.stderr
    # production kept the release it had, named by its label (a short SHA here), not a made-up "v1"
    kept = re.search(r"production kept (\S+)", out)
    assert kept is not None and re.fullmatch(r"[0-9a-f]{7,}", kept.group(1)), kept
    # piped, lines are whole (a why sentence can be a few hundred characters) but never padded to a huge width
    assert max(len(line) for line in out.splitlines()) < 1000
    # every app process it started was stopped
    assert "stopped 9 app process(es)" in out
    assert (keep / "conveyor.db").exists()
    # and the kept database says so: nothing runs anywhere, where it said every app still ran
    db = Database(f"sqlite:///{keep / 'conveyor.db'}")
    try:
        with db.read() as session:
            healths = set(session.scalars(select(Placement.health)))
    finally:
        db.dispose()
    assert healths == {"stopped"}
    print(f"demo took {elapsed:.1f}s")
