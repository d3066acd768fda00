"""Placements: what runs in each (app, environment), written here and nowhere else (invariant 7).

The orchestrator calls these as it changes deployments, in the same transaction:

- a deploy step succeeded and checks start: the deployment is **current**, health ``checking``;
- its checks passed (or it has none) and it succeeds: current, ``healthy``, and the **last good**;
- its checks failed: still current (it runs), ``failing``;
- cancelled after its deploy step succeeded: current, health ``unknown``.

A deploy step that fails leaves the place as it was: the previous release still runs; unless its driver
says it had stopped that release first (``previous_stopped``): then nothing runs, health ``stopped``,
and the current release names what ran last. Manual deploys
and rollbacks move a place exactly like automatic ones. Each function is one statement for a whole
group of deployments, so a pass that finishes a hundred deployments stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, case, update
from sqlalchemy.orm import Session

from conveyor.domain.model import Health
from conveyor.store.tables import Placement, among, execute_rows, insert_for


def now_current(session: Session, deployments: Iterable[Any], health: Health, now: datetime) -> None:
    """``deployments`` (rows with ``id``, ``app``, ``environment``, ``release_id``) now run in their
    places with ``health``; a place's last good release is kept."""
    _upsert(session, list(deployments), health, now, good=False)


def passed(session: Session, deployments: Iterable[Any], now: datetime) -> None:
    """``deployments`` passed every check in their places: current, healthy and the last good."""
    _upsert(session, list(deployments), Health.HEALTHY, now, good=True)


def set_health(session: Session, deployment_ids: Sequence[int], health: Health, now: datetime) -> None:
    """The health of the places where these deployments are current (others are left alone: a deployment
    that is no longer current says nothing about what runs)."""
    if deployment_ids:
        session.execute(
            update(Placement)
            .where(among(Placement.deployment_id, deployment_ids))
            .values(health=health.value, updated_at=now),
            execution_options={"synchronize_session": False},
        )


def stopped(session: Session, app: str | None, environment: str | None, now: datetime) -> None:
    """What ran in the place was stopped by a deploy that then failed: nothing runs there. With neither
    ``app`` nor ``environment``, every place: the processes were all stopped outside the engine (the
    demo's exit stops every app it started)."""
    where = [] if app is None else [Placement.app == app, Placement.environment == environment]
    session.execute(
        update(Placement).where(*where).values(health=Health.STOPPED.value, updated_at=now),
        execution_options={"synchronize_session": False},
    )


PLACEMENTS = cast(Table, Placement.__table__)


@functools.cache
def _upsert_statement(dialect: str, good: bool) -> Any:
    """The upsert of a group's placements (``good``: also their last good), built once per dialect."""
    stmt = insert_for(dialect, PLACEMENTS)
    table = PLACEMENTS.c
    changes: dict[str, Any] = {
        "release_id": stmt.excluded.release_id,
        "deployment_id": stmt.excluded.deployment_id,
        "health": stmt.excluded.health,
        "updated_at": stmt.excluded.updated_at,
        # the same deployment again (checking, then healthy) keeps the time it became current
        "since": case((table.deployment_id == stmt.excluded.deployment_id, table.since), else_=stmt.excluded.since),
    }
    if good:
        changes |= {
            "good_release_id": stmt.excluded.good_release_id,
            "good_deployment_id": stmt.excluded.good_deployment_id,
            "good_since": stmt.excluded.good_since,
        }
    return stmt.on_conflict_do_update(index_elements=[table.app, table.environment], set_=changes)


def _upsert(session: Session, rows: list[Any], health: Health, now: datetime, *, good: bool) -> None:
    if not rows:
        return
    values = [
        {
            "app": r.app,
            "environment": r.environment,
            "release_id": r.release_id,
            "deployment_id": r.id,
            "health": health.value,
            "since": now,
            "updated_at": now,
            "good_release_id": r.release_id if good else None,
            "good_deployment_id": r.id if good else None,
            "good_since": now if good else None,
        }
        for r in _one_per_place(rows)
    ]
    # one statement for the whole group
    execute_rows(session, _upsert_statement(session.get_bind().dialect.name, good), values)


def _one_per_place(rows: list[Any]) -> list[Any]:
    """The latest deployment per place (a place has one active deployment at a time: its app lock)."""
    latest: dict[tuple[str, str], Any] = {}
    for r in rows:
        key = (r.app, r.environment)
        if key not in latest or latest[key].id < r.id:
            latest[key] = r
    return list(latest.values())
