"""Scale-out under fire: three real workers on one PostgreSQL database, one killed with SIGKILL every
few seconds and restarted, while 60 releases of 30 apps in 6 conflict groups flow through 3 environments.

Everything is asserted from what the store recorded, not from logs: every app's newest release reached
production; no two deployments sharing a lock overlapped in time (deployments and step attempts); no
step had two live attempts at once; every re-run is a new attempt that began after the previous one
was closed as expired (its lease ran out) or released; the audit chain verifies.
"""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from conveyor.audit_trail import verify_chain
from conveyor.engine.leases import MAX_ATTEMPTS
from conveyor.operations import Operations
from conveyor.store.database import Database
from tests.integration.harness import (
    CONVEYOR_CLI,
    add_commit,
    attempts,
    cli_environ,
    deployments,
    load,
    lock_intervals,
    make_app_repo,
    overlaps,
    write_config,
)

APPS = 30
GROUPS = 6
WORKERS = 3
LEASE = 2.0
DEADLINE = 150.0


def _config() -> str:
    lines = [
        "environments: [integration, staging, production]",
        "teams: {platform: {notify: []}}",
        "groups: {" + ", ".join(f"g{i}: {{}}" for i in range(GROUPS)) + "}",
        "defaults:",
        "  deploy: {driver: fake, duration: 0.8}",
        "  checks: [{name: smoke, type: fake, count: 1}]",
        "apps:",
    ]
    lines += [
        f"  app{i:02d}: {{repo: ./repos/app{i:02d}, team: platform, groups: [g{i % GROUPS}]}}" for i in range(APPS)
    ]
    return "\n".join(lines) + "\n"


def _worker(config: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [str(CONVEYOR_CLI), "worker", "-c", str(config), "--quiet", "--lease", str(LEASE), "--concurrency", "16"]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=cli_environ(url), stdout=out, stderr=subprocess.STDOUT)


def _victim(db: Database, workers: list[subprocess.Popen[bytes]], rng: random.Random) -> int | None:
    """Half the time a worker running a step right now (owners are "host:pid:nonce"), so kills interrupt
    real work; otherwise any worker. Never one running a step that already lost MAX_ATTEMPTS - 2 runs:
    kills every 2-4 s against 2 s leases can otherwise land on each new holder of one step until conveyor
    gives it up, as designed, and that release never reaches production (giving up has its own test)."""
    running = [a for a in attempts(db) if a.outcome == "running"]
    spared = {_pid(a.owner) for a in running if a.attempt >= MAX_ATTEMPTS - 2}
    candidates = [i for i, w in enumerate(workers) if w.pid not in spared]
    busy_pids = {_pid(a.owner) for a in running}
    busy = [i for i in candidates if workers[i].pid in busy_pids]
    if not candidates:
        return None
    return rng.choice(busy if busy and rng.random() < 0.5 else candidates)


def _pid(owner: str) -> int:
    return int(owner.split(":")[1])


def _newest_live_everywhere(db: Database, newest: dict[str, int]) -> bool:
    live: dict[tuple[str, str], int] = {}
    for d, r in deployments(db):
        if d.state == "succeeded":
            live[(d.app, d.environment)] = max(live.get((d.app, d.environment), 0), r.id)
    return all(live.get((app, "production")) == rid for app, rid in newest.items())


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_workers_killed_at_random_lose_nothing_and_never_overlap(
    tmp_path: Path, postgres_url: str, postgres_store: Database
) -> None:
    for i in range(APPS):
        make_app_repo(tmp_path / "repos" / f"app{i:02d}")
    config_path = write_config(tmp_path, _config())
    config = load(config_path)
    db = postgres_store
    ops = Operations(config, db)
    rng = random.Random(7)
    workers = [_worker(config_path, postgres_url, tmp_path / f"worker{i}.log") for i in range(WORKERS)]
    kills = 0
    try:
        newest = {app: ops.create_release(app, actor="test").release_id for app in config.apps}
        time.sleep(1.0)
        for i, app in enumerate(config.apps):  # the second release of every app, while the first flows
            add_commit(tmp_path / "repos" / f"app{i:02d}", {"VERSION": "2\n"}, "second version")
            newest[app] = ops.create_release(app, actor="test").release_id
        started = time.monotonic()
        next_kill = started + 1.0
        while not _newest_live_everywhere(db, newest):
            assert time.monotonic() - started < DEADLINE, f"the pipeline did not finish under chaos ({kills} kills)"
            if time.monotonic() >= next_kill:
                victim = _victim(db, workers, rng)
                if victim is not None:
                    workers[victim].send_signal(signal.SIGKILL)
                    workers[victim].wait(timeout=10)
                    kills += 1
                    workers[victim] = _worker(config_path, postgres_url, tmp_path / f"worker{victim}.log")
                next_kill = time.monotonic() + rng.uniform(2.0, 4.0)
            time.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=40)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
    assert kills >= 2, "the test should have killed workers while they worked"

    # no deployment sharing a lock overlapped another, by deployment interval and by step attempt interval
    by_deployment, by_attempt = lock_intervals(config, db)
    assert overlaps(by_deployment) == []
    assert overlaps(by_attempt) == []

    # every step's attempts are sequential; each re-run follows an expired or released attempt
    per_step = defaultdict(list)
    for a in attempts(db):
        per_step[a.step_id].append(a)
    reruns = 0
    for step_attempts in per_step.values():
        step_attempts.sort(key=lambda a: a.attempt)
        assert [a.attempt for a in step_attempts] == list(range(1, len(step_attempts) + 1))
        for before, after in itertools.pairwise(step_attempts):
            reruns += 1
            assert before.outcome in ("expired", "released"), before
            assert before.finished_at is not None and before.finished_at <= after.started_at, (before, after)
        assert step_attempts[-1].outcome in ("succeeded", "failed"), step_attempts[-1]

    # every release either reached production or was superseded on the way; none failed
    everything = deployments(db)
    for d, r in everything:
        assert d.state in ("succeeded", "superseded"), (d.app, d.environment, r.label, d.state)
    assert reruns >= 1, "no kill interrupted a running step"

    # workers killed in the middle of writing left the audit chain whole: nothing half-sealed
    chain = verify_chain(db)
    assert chain["ok"] is True, chain
    print(f"kills={kills} reruns={reruns} deployments={len(everything)} events={chain['verified']}")
