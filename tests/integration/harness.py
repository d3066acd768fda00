"""Helpers for end-to-end tests: configs written as a user writes them, real git repositories, a
:class:`Conductor` driven in a background thread, and the recorded timeline read back from the store.

Everything has a deadline: a conductor that does not finish in time is stopped and the test fails,
so a hang never blocks the suite.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from conveyor.config import Config, load_config
from conveyor.engine.conductor import Conductor
from conveyor.store.database import Database
from conveyor.store.tables import Deployment, Release, Step, StepAttempt
from tests.gitrepos import commit, git, head, make_repo

CONVEYOR_CLI = Path(sys.executable).with_name("conveyor")


# -- configs and repositories ------------------------------------------------------------------------


def write_config(root: Path, body: str, *, database_url: str | None = None) -> Path:
    """Write ``conveyor.yaml`` into ``root`` (``database_url`` pins the store for CLI processes)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "conveyor.yaml"
    prefix = f"database_url: {database_url}\n" if database_url else ""
    path.write_text(prefix + body, encoding="utf-8")
    return path


def load(path: Path) -> Config:
    """Load a config the way the CLI does, ignoring any CONVEYOR_DATABASE_URL of the test run itself."""
    environ = {k: v for k, v in os.environ.items() if k != "CONVEYOR_DATABASE_URL"}
    return load_config(path, environ)


def make_app_repo(path: Path, files: dict[str, str] | None = None, message: str = "first commit") -> str:
    """A git repository on branch ``main`` with one commit; returns the commit's SHA."""
    make_repo(path, files or {"README": f"{path.name}\n"}, message)
    return head(path)


def add_commit(repo: Path, files: dict[str, str], message: str, *, tag: str | None = None) -> str:
    commit(repo, files, message)
    if tag:
        git(repo, "tag", tag)
    return head(repo)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cli_environ(database_url: str | None = None) -> dict[str, str]:
    """The environment for a ``conveyor`` child process: ours, with the database chosen explicitly."""
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_DATABASE_URL"}
    if database_url is not None:
        env["CONVEYOR_DATABASE_URL"] = database_url
    return env


def run_cli(
    *args: str, cwd: Path, database_url: str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONVEYOR_CLI), *args],
        cwd=cwd,
        env=cli_environ(database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- running the engine ------------------------------------------------------------------------------


class ConductorThread:
    """A :class:`Conductor` on its own :class:`Database`, run in a thread until idle or stopped."""

    def __init__(
        self,
        config: Config,
        url: str,
        *,
        concurrency: int = 16,
        lease_seconds: float = 15.0,
        exit_when_idle: bool = True,
        owner: str | None = None,
    ) -> None:
        self.db = Database(url)
        self.conductor = Conductor(
            config,
            self.db,
            concurrency=concurrency,
            lease_seconds=lease_seconds,
            poll_interval=0.05,
            grace_seconds=5.0,
            owner=owner,
        )
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.started = self.finished = 0.0
        self._exit_when_idle = exit_when_idle
        self._thread = threading.Thread(target=self._main, name=f"conductor-{owner or ''}", daemon=True)

    def _main(self) -> None:
        try:
            self.conductor.run(self.stop, exit_when_idle=self._exit_when_idle)
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self.finished = time.monotonic()

    def start(self) -> ConductorThread:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def join(self, timeout: float) -> float:
        """Wait for the conductor to exit; fail (after stopping it) if it does not within ``timeout``.
        Returns its wall time in seconds."""
        self._thread.join(timeout)
        hung = self._thread.is_alive()
        if hung:
            self.stop.set()
            self._thread.join(30)
        self.db.dispose()
        if self.error is not None:
            raise AssertionError(f"the conductor crashed: {self.error!r}") from self.error
        assert not hung, f"the conductor did not finish within {timeout:g}s"
        return self.finished - self.started

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def run_until_idle(
    config: Config, url: str, *, timeout: float = 60.0, concurrency: int = 16, lease_seconds: float = 15.0
) -> float:
    """Run one conductor until nothing is left to do; returns its wall time."""
    thread = ConductorThread(config, url, concurrency=concurrency, lease_seconds=lease_seconds)
    return thread.start().join(timeout)


@contextmanager
def conductor_running(
    config: Config, url: str, *, timeout: float = 60.0, concurrency: int = 16, lease_seconds: float = 15.0
) -> Iterator[ConductorThread]:
    """A conductor running while the block runs; after it, wait (up to ``timeout``) until it is idle."""
    thread = ConductorThread(config, url, concurrency=concurrency, lease_seconds=lease_seconds).start()
    try:
        yield thread
    except BaseException:
        thread.stop.set()
        with suppress(AssertionError):
            thread.join(30)
        raise
    thread.join(timeout)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# -- reading the recorded timeline ---------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptRow:
    """One step attempt with its step and deployment."""

    step_id: int
    attempt: int
    owner: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    kind: str
    name: str
    deployment_id: int
    app: str
    environment: str
    release: str
    deployment_state: str
    deployment_started_at: datetime | None
    deployment_finished_at: datetime | None


def attempts(db: Database) -> list[AttemptRow]:
    with db.read() as session:
        rows = session.execute(
            select(StepAttempt, Step, Deployment, Release.label)
            .join(Step, Step.id == StepAttempt.step_id)
            .join(Deployment, Deployment.id == Step.deployment_id)
            .join(Release, Release.id == Deployment.release_id)
            .order_by(StepAttempt.started_at, StepAttempt.id)
        ).all()
        return [
            AttemptRow(
                a.step_id,
                a.attempt,
                a.owner,
                a.started_at,
                a.finished_at,
                a.outcome,
                s.kind,
                s.name,
                d.id,
                d.app,
                d.environment,
                label,
                d.state,
                d.started_at,
                d.finished_at,
            )
            for a, s, d, label in rows
        ]


def deployments(db: Database, app: str | None = None) -> list[tuple[Deployment, Release]]:
    with db.read() as session:
        stmt = select(Deployment, Release).join(Release, Release.id == Deployment.release_id).order_by(Deployment.id)
        if app is not None:
            stmt = stmt.where(Deployment.app == app)
        return [(d, r) for d, r in session.execute(stmt).all()]


def deployment_state(db: Database, app: str, environment: str, release_id: int) -> str | None:
    with db.read() as session:
        return session.scalars(
            select(Deployment.state)
            .where(
                Deployment.app == app,
                Deployment.environment == environment,
                Deployment.release_id == release_id,
            )
            .order_by(Deployment.id.desc())
        ).first()


Interval = tuple[datetime, datetime, str]  # start, end, what


def overlaps(intervals_by_lock: dict[str, list[Interval]]) -> list[str]:
    """Every pair of intervals under one lock name that overlap in time (touching ends are fine)."""
    found = []
    for lock, intervals in intervals_by_lock.items():
        ordered = sorted(intervals)
        for (_, end, what), (start, _, other) in itertools.pairwise(ordered):
            if start < end:
                found.append(f"{lock}: {what} (until {end.time()}) overlaps {other} (from {start.time()})")
    return found


def lock_intervals(config: Config, db: Database) -> tuple[dict[str, list[Interval]], dict[str, list[Interval]]]:
    """Per lock name: the intervals of the deployments that held it, and of their step attempts."""
    by_deployment: dict[str, list[Interval]] = defaultdict(list)
    by_attempt: dict[str, list[Interval]] = defaultdict(list)
    for d, r in deployments(db):
        if d.started_at is None:
            continue  # never ran (superseded while waiting)
        assert d.finished_at is not None, f"deployment #{d.id} started but never finished"
        for lock in config.app(d.app).lock_names(d.environment):
            by_deployment[lock].append((d.started_at, d.finished_at, f"deployment #{d.id} {d.app} {r.label}"))
    for a in attempts(db):
        assert a.finished_at is not None, f"attempt {a.attempt} of step {a.step_id} never finished"
        what = f"{a.app}/{a.environment} {a.kind} {a.name} attempt {a.attempt}"
        for lock in config.app(a.app).lock_names(a.environment):
            by_attempt[lock].append((a.started_at, a.finished_at, what))
    return by_deployment, by_attempt


def any_overlap(intervals: Iterable[tuple[datetime, datetime]]) -> bool:
    ordered = sorted(intervals)
    return any(b[0] < a[1] for a, b in itertools.pairwise(ordered))
