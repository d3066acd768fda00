"""Engine benchmarks: print one ``name: value`` line per figure, then one JSON line with all of them.

Figures are ratios measured in one run (the machines are shared and noisy), never timed tests:

- ``makespan_ratio_independent``: 100 independent apps x 3 environments, fake 1 s deploys, no checks;
  measured makespan / lower bound (3 s).
- ``makespan_ratio_groups``: the same apps in 10 conflict groups of 5; makespan / lower bound, where
  the bound is the busiest lock's serial work plus the remaining environments (5 s + 2 s = 7 s).
- ``overhead_ms_per_step_sqlite``: a no-op fake deploy, many steps; engine wall time per step.

Run with ``make bench``. More figures (PostgreSQL, scale-out, API latency) arrive with the HTTP API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from conveyor.config import load_config
from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade

ENVIRONMENTS = ("integration", "staging", "production")
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@conveyor.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@conveyor.invalid",
}


def make_repo(path: Path) -> None:
    path.mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, env=GIT_ENV, capture_output=True)


def project(root: Path, apps: int, groups: int, duration: float) -> Path:
    repo = root / "repos" / "app"
    make_repo(repo)  # one repository serves every app: the benchmark measures the engine, not git
    lines = [
        f"environments: [{', '.join(ENVIRONMENTS)}]",
        "teams: {bench: {notify: []}}",
        "groups: {" + ", ".join(f"g{i}: {{}}" for i in range(groups)) + "}",
        f"defaults: {{deploy: {{driver: fake, duration: {duration}}}, checks: []}}",
        "apps:",
    ]
    for i in range(apps):
        group = f", groups: [g{i % groups}]" if groups else ""
        lines.append(f"  app{i:03d}: {{repo: ./repos/app, team: bench{group}}}")
    path = root / "conveyor.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def makespan(apps: int, groups: int, duration: float, concurrency: int) -> float:
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        config = load_config(project(Path(tmp), apps, groups, duration), {})
        db = Database(config.database_url)
        upgrade(db)
        ops = Operations(config, db)
        for name in config.apps:
            ops.create_release(name, actor="bench")
        conductor = Conductor(config, db, concurrency=concurrency, poll_interval=0.02, grace_seconds=5)
        started = time.monotonic()
        conductor.run(threading.Event(), exit_when_idle=True)
        elapsed = time.monotonic() - started
        db.dispose()
        return elapsed


def main() -> None:
    figures: dict[str, float] = {}
    independent = makespan(apps=100, groups=0, duration=1.0, concurrency=128)
    figures["makespan_s_independent"] = round(independent, 3)
    figures["makespan_ratio_independent"] = round(independent / 3.0, 3)
    grouped = makespan(apps=50, groups=10, duration=1.0, concurrency=128)
    figures["makespan_s_groups"] = round(grouped, 3)
    figures["makespan_ratio_groups"] = round(grouped / 7.0, 3)
    steps = 300
    noop = makespan(apps=steps // 3, groups=0, duration=0.0, concurrency=16)
    figures["overhead_ms_per_step_sqlite"] = round(noop / steps * 1000, 2)
    for name, value in figures.items():
        print(f"{name}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
