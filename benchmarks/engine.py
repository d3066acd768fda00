"""Measuring the engine: a project of N apps on the fake driver, run until idle in-process (makespan)
or by several ``conveyor worker`` processes (scale-out)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

from conveyor.config import load_config
from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from conveyor.store.tables import StepAttempt

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@conveyor.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@conveyor.invalid",
}


def write_project(
    root: Path, apps: int, groups: int, duration: float, environments: tuple[str, ...], *, blocking: bool = False
) -> Path:
    """``blocking``: the fake deploys wait on a thread each, as a driver that blocks does, instead of as
    coroutines on the conductor's step loop."""
    repo = root / "repos" / "app"
    repo.mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=GIT_ENV, capture_output=True)
    lines = [
        f"environments: [{', '.join(environments)}]",
        "teams: {bench: {notify: []}}",
        "groups: {" + ", ".join(f"g{i}: {{}}" for i in range(groups)) + "}",
        f"defaults: {{deploy: {{driver: fake, duration: {duration}, blocking: {str(blocking).lower()}}}, checks: []}}",
        "apps:",
    ]
    for i in range(apps):  # one repository serves every app: this measures the engine, not git
        group = f", groups: [g{i % groups}]" if groups else ""
        lines.append(f"  app{i:03d}: {{repo: ./repos/app, team: bench{group}}}")
    path = root / "conveyor.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _prepared(  # type: ignore[no-untyped-def]
    root: Path, database: str, apps: int, groups: int, duration: float, envs: tuple[str, ...], blocking: bool = False
):
    config_path = write_project(root, apps, groups, duration, envs, blocking=blocking)
    environ = {"CONVEYOR_DATABASE_URL": database} if database != "sqlite" else {}
    config = load_config(config_path, environ)
    db = Database(config.database_url)
    upgrade(db)
    ops = Operations(config, db)
    for name in config.apps:
        ops.create_release(name, actor="bench")
    return config_path, config, db


def makespan(
    database: str, *, apps: int, groups: int, duration: float, concurrency: int | None = 128, blocking: bool = False
) -> float:
    """Seconds from the first conductor tick until nothing is left to do (3 environments); ``concurrency``
    None runs the conductor at its default, as ``conveyor serve`` and ``conveyor worker`` do."""
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        envs = ("integration", "staging", "production")
        _, config, db = _prepared(Path(tmp), database, apps, groups, duration, envs, blocking)
        width = {} if concurrency is None else {"concurrency": concurrency}
        conductor = Conductor(config, db, poll_interval=0.02, grace_seconds=5, **width)
        started = time.monotonic()
        conductor.run(threading.Event(), exit_when_idle=True)
        elapsed = time.monotonic() - started
        db.dispose()
        return elapsed


def makespan_in_child(*, apps: int, duration: float, blocking: bool = False) -> tuple[float, float]:
    """:func:`makespan` of ``apps`` independent apps on SQLite at the conductor's default concurrency, in
    a fresh interpreter; returns (seconds, that process's peak resident set in MiB)."""
    code = (
        "import json, resource, sys; sys.path.insert(0, sys.argv[1]); from engine import makespan; "
        f"seconds = makespan('sqlite', apps={apps}, groups=0, duration={duration}, concurrency=None, "
        f"blocking={blocking}); "
        "print(json.dumps([seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).resolve().parent)],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds, peak_mib = json.loads(out.stdout.strip().splitlines()[-1])
    return float(seconds), float(peak_mib)


def scaleout(
    database: str, *, workers: int, deployments: int = 200, duration: float = 0.5, per_worker: int = 8
) -> float:
    """Seconds from the first step start to the last step end, with ``workers`` worker processes."""
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        config_path, _, db = _prepared(Path(tmp), database, deployments, 0, duration, ("production",))
        argv = [
            sys.executable,
            "-m",
            "conveyor",
            "worker",
            "-c",
            str(config_path),
            "--quiet",
            "--exit-when-idle",
            "--concurrency",
            str(per_worker),
        ]
        env = {**os.environ, "CONVEYOR_DATABASE_URL": database}
        procs = [subprocess.Popen(argv, env=env) for _ in range(workers)]
        for p in procs:
            p.wait(timeout=600)
        with db.read() as session:
            first, last = session.execute(
                select(func.min(StepAttempt.started_at), func.max(StepAttempt.finished_at))
            ).one()
        db.dispose()
        return float((last - first).total_seconds())
