"""A worker killed with SIGKILL mid-deploy takes its deploy's processes with it, so no two runs overlap.

A real ``conveyor worker`` runs a ``command`` deploy: ``sh`` (the command) starts ``sleep 15`` (a
grandchild) and waits for it, recording the start of its run, its attempt and lease expiry, and, from a
SIGTERM trap, the end of its run. The worker is killed with ``kill -9``; the tether ends the command's
process group, so the ``sleep`` is gone within a second. A second worker re-runs the step once the lease
has expired (its run sleeps briefly: ``CONVEYOR_ATTEMPT`` is 2), and the recorded runs never overlap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor.operations import Operations
from conveyor.store.database import Database
from tests.integration.harness import (
    CONVEYOR_CLI,
    attempts,
    cli_environ,
    deployment_state,
    load,
    make_app_repo,
    wait_for,
    write_config,
)

LEASE = 3.0
SCRIPT = """\
runs="$1"
echo "start $CONVEYOR_ATTEMPT $(date +%s.%N) $CONVEYOR_LEASE_EXPIRES_AT $CONVEYOR_STEP_ID" >> "$runs"
trap 'echo "end $CONVEYOR_ATTEMPT $(date +%s.%N) terminated" >> "$runs"; exit 143' TERM
if [ "$CONVEYOR_ATTEMPT" = 1 ]; then seconds=15; else seconds=0.5; fi
sleep "$seconds" &
echo "$!" > "$runs.sleep-$CONVEYOR_ATTEMPT"
wait "$!"
echo "end $CONVEYOR_ATTEMPT $(date +%s.%N) finished" >> "$runs"
"""
CONFIG = """\
environments: [integration]
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: command, argv: [sh, -c, {script}, deploy, "{runs}"], timeout: 60}}
  checks: []
apps:
  web: {{repo: ./repos/web, team: publishing}}
"""


def start_worker(config: Path, url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [str(CONVEYOR_CLI), "worker", "-c", str(config), "--quiet", "--lease", str(LEASE), *extra]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=cli_environ(url), stdout=out, stderr=subprocess.STDOUT)


def alive(pid: int) -> bool:
    """True while the process runs; a zombie awaiting its reaper counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and GNU date")
def test_a_killed_worker_takes_its_deploy_with_it(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "web")
    runs = tmp_path / "runs.txt"
    script = '"' + SCRIPT.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    config_path = write_config(tmp_path, CONFIG.format(script=script, runs=runs))
    config = load(config_path)
    db = Database(db_url)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        release = Operations(config, db).create_release("web")
        first = start_worker(config_path, db_url, tmp_path / "worker-1.log")
        workers.append(first)
        sleep_file = Path(f"{runs}.sleep-1")
        wait_for(lambda: sleep_file.exists() and sleep_file.read_text().strip() != "", 30, "the deploy to start")
        sleeper = int(sleep_file.read_text())
        assert alive(sleeper)

        killed_at = time.time()
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        wait_for(lambda: not alive(sleeper), 1.0, "the killed worker's sleep to end", interval=0.01)
        assert time.time() - killed_at < 1.0

        second = start_worker(config_path, db_url, tmp_path / "worker-2.log", "--exit-when-idle")
        workers.append(second)
        assert second.wait(60) == 0, (tmp_path / "worker-2.log").read_text()
        assert deployment_state(db, "web", "integration", release.release_id) == "succeeded"

        records = [line.split() for line in runs.read_text().splitlines()]
        assert [(r[0], r[1]) for r in records] == [("start", "1"), ("end", "1"), ("start", "2"), ("end", "2")]
        (_, _, start_1, lease_1, step_1), (_, _, end_1, how_1), (_, _, start_2, _, step_2), (_, _, end_2, how_2) = (
            records
        )
        assert (how_1, how_2) == ("terminated", "finished")
        assert float(start_1) < float(end_1) <= float(start_2) < float(end_2), "two runs overlapped"
        assert float(end_1) - killed_at < 1.0
        lease_expiry = datetime.fromisoformat(lease_1.replace("Z", "+00:00"))
        assert lease_expiry.tzinfo is not None and lease_expiry.utcoffset() == UTC.utcoffset(None)
        assert 0 < lease_expiry.timestamp() - float(start_1) <= LEASE + 1

        first_try, second_try = attempts(db)
        assert int(step_1) == int(step_2) == first_try.step_id
        assert (first_try.attempt, first_try.outcome) == (1, "expired")
        assert (second_try.attempt, second_try.outcome) == (2, "succeeded")
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        db.dispose()
