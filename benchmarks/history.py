"""Measuring reads against a long history: a planner pass and ``conveyor status`` must cost about the same
after a year of deploys as on the first day, because they read only what is open or current."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine import write_project
from prometheus_client import generate_latest
from sqlalchemy import insert

from conveyor import views
from conveyor.config import load_config
from conveyor.config.resolved import Config
from conveyor.domain.planner import plan_next
from conveyor.engine.deployments import create_deployment
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from conveyor.store.snapshot import app_policies, load_snapshot
from conveyor.store.tables import Decision, Deployment, Event, Placement, Release
from conveyor.web.metrics import registry_for

ENVIRONMENTS = ("integration", "staging", "production")
CHUNK = len(ENVIRONMENTS) * 2000  # whole releases per chunk


@dataclass
class Aged:
    """A project of ``apps`` apps with one new release each behind ``history`` finished deployments."""

    config: Config
    db: Database


@contextmanager
def aged_project(*, apps: int = 100, history: int = 0) -> Iterator[Aged]:
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        config = load_config(write_project(Path(tmp), apps, 0, 0.0, ENVIRONMENTS), {})
        db = Database(config.database_url)
        upgrade(db)
        if history:
            _write_history(db, sorted(config.apps), history)
        _open_releases(db, sorted(config.apps), first=history // len(ENVIRONMENTS) + 1)
        db.dispose()  # as a running store would be: its write-ahead log checkpointed (on last close)
        db = Database(config.database_url)
        try:
            yield Aged(config, db)
        finally:
            db.dispose()


def median_ms(measure: Callable[[], object], runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        measure()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def planner_pass_ms(*, history: int, apps: int = 100) -> float:
    """Median milliseconds of one planner pass (read the snapshot, plan) on SQLite for ``apps`` apps with a
    new release each and ``history`` finished deployments of older releases (each with its Decision and
    Event)."""
    with aged_project(apps=apps, history=history) as p:
        policies = app_policies(p.config)
        return median_ms(lambda: plan_next(load_snapshot(p.db, p.config, policies), datetime.now(UTC)), 30)


def status_ms(*, history: int) -> float:
    """Median milliseconds of ``conveyor status`` (and ``GET /api/apps``) for the same 100 apps."""
    with aged_project(history=history) as p:
        return median_ms(lambda: views.status(p.db, p.config), 10)


def metrics_ms(*, history: int) -> float:
    """Median milliseconds of one ``/metrics`` scrape (the whole registry, rendered) for the same 100 apps."""
    with aged_project(history=history) as p:
        registry = registry_for(p.db, p.config)
        return median_ms(lambda: generate_latest(registry), 7)


def _open_releases(db: Database, apps: list[str], first: int) -> None:
    """A new release per app, waiting to go to the first environment (as a merge leaves it)."""
    now = datetime.now(UTC)
    with db.write() as session:
        for i, app in enumerate(apps):
            release = Release(
                app=app,
                sha=f"{first + i:040x}",
                label="new",
                ref="main",
                commits=[],
                created_at=now,
                created_by="bench",
            )
            session.add(release)
            session.flush()
            create_deployment(
                session,
                release_id=release.id,
                app=app,
                environment=ENVIRONMENTS[0],
                now=now,
                actor="bench",
                origin_key=f"release:{release.id}",
                message="new release",
            )


def _write_history(db: Database, apps: list[str], count: int) -> None:
    """``count`` succeeded deployments, oldest first: each app's releases in turn, each release through
    every environment, as a year of deploys leaves them (with their decisions and events)."""
    start = datetime.now(UTC) - timedelta(days=365)
    with db.write() as session:
        newest: dict[tuple[str, str], tuple[int, int]] = {}
        for offset in range(0, count, CHUNK):
            numbers = range(offset // len(ENVIRONMENTS), (min(count, offset + CHUNK) - 1) // len(ENVIRONMENTS) + 1)
            releases = session.execute(
                insert(Release).returning(Release.id, Release.app),
                [
                    {
                        "app": apps[n % len(apps)],
                        "sha": f"{n:040x}",
                        "label": f"h{n}",
                        "ref": "main",
                        "commits": [],
                        "created_at": start,
                        "created_by": "bench",
                    }
                    for n in numbers
                ],
            ).all()
            by_number = dict(zip(numbers, releases, strict=True))
            rows = []
            for i in range(offset, min(count, offset + CHUNK)):
                release = by_number[i // len(ENVIRONMENTS)]
                at = start + timedelta(minutes=i)
                rows.append(
                    {
                        "release_id": release.id,
                        "app": release.app,
                        "environment": ENVIRONMENTS[i % len(ENVIRONMENTS)],
                        "state": "succeeded",
                        "origin_key": f"history:{i}",
                        "queued_at": at,
                        "started_at": at,
                        "finished_at": at,
                        "updated_at": at,
                        "created_by": "bench",
                        "summary": "history",
                    }
                )
            done = session.execute(
                insert(Deployment).returning(
                    Deployment.id, Deployment.app, Deployment.environment, Deployment.release_id
                ),
                rows,
            ).all()
            # each deployment's start, and for each past the first environment the promotion that made
            # it, which is about no deployment yet (as the orchestrator records them)
            decisions = [
                {
                    "app": d.app,
                    "environment": d.environment,
                    "deployment_id": deployment_id,
                    "release_id": d.release_id,
                    "verdict": "proceed",
                    "rule": rule,
                    "summary": "history",
                    "reasons": [],
                    "evidence": {},
                    "fingerprint": f"{d.id:031x}{int(deployment_id is None)}",
                    "at": start,
                }
                for d in done
                for deployment_id, rule in ((d.id, "StartWhenLocksFree"), (None, "PromoteOnSuccess"))
                if deployment_id is not None or d.environment != ENVIRONMENTS[0]
            ]
            session.execute(insert(Decision), decisions)
            session.execute(
                insert(Event),
                [
                    {
                        "kind": "deployment.succeeded",
                        "app": d.app,
                        "environment": d.environment,
                        "release_id": d.release_id,
                        "deployment_id": d.id,
                        "actor": "conveyor",
                        "at": start,
                        "message": "history",
                        "payload": {},
                    }
                    for d in done
                ],
            )
            for d in done:
                newest[(d.app, d.environment)] = max(newest.get((d.app, d.environment), (0, 0)), (d.release_id, d.id))
        session.execute(
            insert(Placement),
            [
                {
                    "app": app,
                    "environment": env,
                    "release_id": rid,
                    "deployment_id": did,
                    "health": "healthy",
                    "since": start,
                    "updated_at": start,
                    "good_release_id": rid,
                    "good_deployment_id": did,
                    "good_since": start,
                }
                for (app, env), (rid, did) in newest.items()
            ],
        )
