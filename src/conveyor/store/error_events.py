"""The error store: projects and their keys, issues, raw events and per-minute counts.

- A project is one (app, environment) with a random public key, made on first use
  (:func:`project_for`, by ``conveyor dsn``); its id is the Sentry project id in the DSN.
- :func:`record_batch` writes the events of many requests in one transaction: new issues, the raw
  events, the per-minute counts, and the ``error.new_issue`` / ``error.spike`` events that notify.
- Raw events are kept for ``errors.retention``, per-minute counts for ``errors.counts_retention``
  (:func:`prune`). :func:`count_events` is exact where raw events are kept and exact to the minute
  beyond: a project's ``raw_since`` says where the pruned part ends, on a minute boundary.

Events are counted by the time conveyor received them, never by the time an SDK claims.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import quote, urlsplit

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from conveyor.domain.error_groups import Grouping
from conveyor.domain.error_spikes import SpikeRule, baseline_minutes, is_spike
from conveyor.domain.model import DeploymentState
from conveyor.store.database import dialect_insert
from conveyor.store.events import About, record_events
from conveyor.store.tables import (
    Deployment,
    ErrorCount,
    ErrorEvent,
    ErrorIssue,
    ErrorProject,
    Placement,
    Release,
)

PRUNE_BATCH = 5000


@dataclass(frozen=True)
class Project:
    id: int
    app: str
    environment: str
    public_key: str


@dataclass(frozen=True)
class IncomingEvent:
    project: Project
    event_id: str
    grouping: Grouping
    release: str | None
    data: str  # the event's JSON as the SDK sent it


@dataclass(frozen=True)
class BatchResult:
    new_issues: int
    spikes: int


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _project(row: ErrorProject) -> Project:
    return Project(row.id, row.app, row.environment, row.public_key)


def project_for(session: Session, app: str, environment: str, now: datetime) -> Project:
    """The project of ``app`` in ``environment``, made with a new random key the first time."""
    found = find_project(session, app, environment)
    if found is not None:
        return found
    statement = (
        dialect_insert(session, ErrorProject)
        .values(app=app, environment=environment, public_key=secrets.token_hex(16), created_at=now)
        .on_conflict_do_nothing(index_elements=["app", "environment"])
    )
    session.execute(statement)
    made = find_project(session, app, environment)
    assert made is not None
    return made


def find_project(session: Session, app: str, environment: str) -> Project | None:
    row = session.scalars(
        select(ErrorProject).where(ErrorProject.app == app, ErrorProject.environment == environment)
    ).first()
    return _project(row) if row is not None else None


def project_by_id(session: Session, project_id: int) -> Project | None:
    row = session.get(ErrorProject, project_id)
    return _project(row) if row is not None else None


def dsn(public_url: str, project: Project) -> str:
    """The DSN of ``project`` under ``public_url``: ``scheme://KEY@host[:port][/prefix]/PROJECT_ID``."""
    parts = urlsplit(public_url)
    return f"{parts.scheme}://{quote(project.public_key)}@{parts.netloc}{parts.path.rstrip('/')}/{project.id}"


def record_batch(
    session: Session,
    events: Sequence[IncomingEvent],
    *,
    now: datetime,
    spike: SpikeRule,
    link: Callable[[str], str] = lambda path: path,
) -> BatchResult:
    """Store ``events`` as received at ``now``, and notify new issues and spikes (one transaction)."""
    if not events:
        return BatchResult(0, 0)
    minute = minute_of(now)
    issues, new = _issues_for(session, events, now)
    per_issue = Counter(issues[_key(e)] for e in events)
    last_release = {issues[_key(e)]: e.release for e in events}
    table = cast(Table, ErrorIssue.__table__)  # a Core UPDATE: one executemany, by bound ids
    session.execute(
        table.update()
        .where(table.c.id == bindparam("b_id"))
        .values(last_seen=now, last_release=bindparam("b_release"), events=table.c.events + bindparam("b_n")),
        [{"b_id": i, "b_release": last_release[i], "b_n": n} for i, n in per_issue.items()],
    )
    session.execute(
        insert(ErrorEvent),
        [
            {
                "project_id": e.project.id,
                "issue_id": issues[_key(e)],
                "event_id": e.event_id,
                "received_at": now,
                "release": e.release,
                "data": e.data,
            }
            for e in events
        ],
    )
    buckets = Counter((issues[_key(e)], e.release or "", e.project.id) for e in events)
    upsert = dialect_insert(session, ErrorCount)
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["issue_id", "minute", "release"],
            set_={"events": ErrorCount.events + upsert.excluded.events},
        ),
        [
            {"issue_id": i, "minute": minute, "release": r, "project_id": p, "events": n}
            for (i, r, p), n in buckets.items()
        ],
    )
    _announce_new(session, new, now, link)
    spikes = _announce_spikes(session, list(per_issue), minute, now, spike, link)
    return BatchResult(len(new), spikes)


def _key(event: IncomingEvent) -> tuple[int, str]:
    return event.project.id, event.grouping.fingerprint


def _issues_for(
    session: Session, events: Sequence[IncomingEvent], now: datetime
) -> tuple[dict[tuple[int, str], int], list[tuple[IncomingEvent, int]]]:
    """The issue id of every event's group, making the missing issues; and the issues made here (with
    their first event). Another process making the same issue at the same moment makes it once."""
    keys = {_key(e) for e in events}
    found = session.execute(
        select(ErrorIssue.id, ErrorIssue.project_id, ErrorIssue.fingerprint).where(
            ErrorIssue.project_id.in_({p for p, _ in keys}), ErrorIssue.fingerprint.in_({f for _, f in keys})
        )
    ).all()
    issues = {(r.project_id, r.fingerprint): int(r.id) for r in found if (r.project_id, r.fingerprint) in keys}
    new: list[tuple[IncomingEvent, int]] = []
    for event in events:
        key = _key(event)
        if key in issues:
            continue
        g = event.grouping
        made = session.execute(
            dialect_insert(session, ErrorIssue)
            .values(
                project_id=event.project.id,
                fingerprint=g.fingerprint,
                title=g.title,
                culprit=g.culprit,
                level=g.level,
                first_seen=now,
                first_release=event.release,
                last_seen=now,
                last_release=event.release,
                events=0,
            )
            .on_conflict_do_nothing(index_elements=["project_id", "fingerprint"])
            .returning(ErrorIssue.id)
        ).scalar()
        if made is None:  # made meanwhile by another process
            made = session.scalar(
                select(ErrorIssue.id).where(ErrorIssue.project_id == key[0], ErrorIssue.fingerprint == key[1])
            )
        else:
            new.append((event, int(made)))
        issues[key] = int(made)  # type: ignore[arg-type]
    return issues, new


def _release_of(session: Session, app: str, environment: str, release: str | None) -> tuple[int | None, bool]:
    """The id of the conveyor release an SDK's ``release`` names, and whether it is the release running in
    ``environment`` now or being deployed there (just deployed).

    The SDK's release is the release's label or SHA, bare or in Sentry's ``package@version`` form with the
    app's name as the package (what the ``error_rate`` check counts with ``release_prefix: "{app}@"``);
    the name as given wins over the name without the prefix.
    """
    if not release:
        return None, False
    found: list[int] = []
    for name in dict.fromkeys([release, release.removeprefix(f"{app}@")]):
        found = _releases_named(session, app, name) if name else []
        if found:
            break
    if not found:
        return None, False
    current = session.scalar(
        select(Placement.release_id).where(Placement.app == app, Placement.environment == environment)
    )
    if current in found:
        return current, True
    # An app reports from the moment its process starts, before its deploy step is recorded as done and
    # the release becomes the place's current one: a release still deploying there is just deployed too.
    deploying = session.scalar(
        select(Deployment.release_id)
        .where(
            Deployment.app == app,
            Deployment.environment == environment,
            Deployment.state == DeploymentState.DEPLOYING.value,
            Deployment.release_id.in_(found),
        )
        .order_by(Deployment.id.desc())
        .limit(1)
    )
    if deploying is not None:
        return int(deploying), True
    return found[0], False


def _releases_named(session: Session, app: str, name: str) -> list[int]:
    """The app's releases whose label or SHA is ``name`` (or whose SHA starts with it), newest first."""
    names: list[Any] = [Release.label == name, Release.sha == name]
    if len(name) >= 7 and all(c in "0123456789abcdef" for c in name):
        names.append(Release.sha.startswith(name))
    return list(
        session.scalars(select(Release.id).where(Release.app == app, or_(*names)).order_by(Release.id.desc())).all()
    )


def _announce_new(
    session: Session, new: list[tuple[IncomingEvent, int]], now: datetime, link: Callable[[str], str]
) -> None:
    for event, issue_id in new:
        project, g = event.project, event.grouping
        release_id, just_deployed = _release_of(session, project.app, project.environment, event.release)
        where = f"{project.app} in {project.environment}"
        if just_deployed:
            message = f"new error in {where}, first seen in {event.release}, the release just deployed: {g.title}"
        else:
            message = f"new error in {where}: {g.title}"
        payload = {
            "issue_id": issue_id,
            "title": g.title,
            "culprit": g.culprit,
            "level": g.level,
            "release": event.release,
            "release_just_deployed": just_deployed,
            "first_seen": now.isoformat(),
            "url": link(_errors_path(project)),
        }
        about = About(message, project.app, project.environment, release_id, None, payload)
        record_events(session, "error.new_issue", at=now, actor="conveyor", about=[about])


def _errors_path(project: Project) -> str:
    return f"/api/apps/{quote(project.app, safe='')}/errors?environment={quote(project.environment, safe='')}"


def _announce_spikes(
    session: Session, touched: list[int], minute: datetime, now: datetime, rule: SpikeRule, link: Callable[[str], str]
) -> int:
    """Record ``error.spike`` for the issues among ``touched`` whose current minute is a spike."""
    cooled = now - timedelta(seconds=rule.cooldown)
    busy = session.execute(
        select(ErrorCount.issue_id, func.sum(ErrorCount.events).label("n"))
        .join(ErrorIssue, ErrorIssue.id == ErrorCount.issue_id)
        .where(
            ErrorCount.issue_id.in_(touched),
            ErrorCount.minute == minute,
            or_(ErrorIssue.last_spike_at.is_(None), ErrorIssue.last_spike_at <= cooled),
        )
        .group_by(ErrorCount.issue_id)
        .having(func.sum(ErrorCount.events) >= rule.min_events)
    ).all()
    if not busy:
        return 0
    since = minute - timedelta(minutes=baseline_minutes(rule))
    baselines = dict(
        session.execute(
            select(ErrorCount.issue_id, func.sum(ErrorCount.events))
            .where(ErrorCount.issue_id.in_([b.issue_id for b in busy]), ErrorCount.minute >= since)
            .where(ErrorCount.minute < minute)
            .group_by(ErrorCount.issue_id)
        ).all()
    )
    spikes = 0
    for row in busy:
        baseline = int(baselines.get(row.issue_id) or 0)
        if not is_spike(rule, minute_events=int(row.n), baseline_events=baseline, last_spike_at=None, now=now):
            continue
        issue = session.get_one(ErrorIssue, row.issue_id)
        project = session.get_one(ErrorProject, issue.project_id)
        issue.last_spike_at = now
        average = baseline / baseline_minutes(rule)
        payload = {
            "issue_id": issue.id,
            "title": issue.title,
            "level": issue.level,
            "events_this_minute": int(row.n),
            "baseline_per_minute": round(average, 2),
            "release": issue.last_release,
            "url": link(_errors_path(_project(project))),
        }
        message = (
            f"error spike in {project.app} in {project.environment}: {int(row.n)} events this minute "
            f"(baseline {average:.1f}/min): {issue.title}"
        )
        about = About(message, project.app, project.environment, None, None, payload)
        record_events(session, "error.spike", at=now, actor="conveyor", about=[about])
        spikes += 1
    return spikes


def count_events(
    session: Session, *, app: str, environment: str, start: datetime, end: datetime, release: str | None = None
) -> int:
    """Error events (not transactions) received for app+environment with start <= received/timestamp < end,
    optionally only those tagged with `release`."""
    project = session.scalars(
        select(ErrorProject).where(ErrorProject.app == app, ErrorProject.environment == environment)
    ).first()
    if project is None or start >= end:
        return 0
    horizon = project.raw_since
    total = 0
    raw_start = max(start, horizon) if horizon is not None else start
    if raw_start < end:
        raw = select(func.count()).select_from(ErrorEvent).where(ErrorEvent.project_id == project.id)
        raw = raw.where(ErrorEvent.received_at >= raw_start, ErrorEvent.received_at < end)
        if release is not None:
            raw = raw.where(ErrorEvent.release == release)
        total += int(session.scalar(raw) or 0)
    if horizon is not None and start < horizon:
        counted = select(func.coalesce(func.sum(ErrorCount.events), 0)).where(ErrorCount.project_id == project.id)
        counted = counted.where(ErrorCount.minute >= minute_of(start), ErrorCount.minute < min(horizon, end))
        if release is not None:
            counted = counted.where(ErrorCount.release == release)
        total += int(session.scalar(counted) or 0)
    return total


@dataclass(frozen=True)
class IssueView:
    id: int
    environment: str
    title: str
    culprit: str
    level: str
    events: int  # in the window asked about (to the minute)
    total_events: int
    first_seen: datetime
    first_release: str | None
    last_seen: datetime
    last_release: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "environment": self.environment,
            "title": self.title,
            "culprit": self.culprit,
            "level": self.level,
            "events": self.events,
            "total_events": self.total_events,
            "first_seen": self.first_seen.isoformat(),
            "first_release": self.first_release,
            "last_seen": self.last_seen.isoformat(),
            "last_release": self.last_release,
        }


def issues(session: Session, app: str, environment: str | None, since: datetime, limit: int = 100) -> list[IssueView]:
    """The app's issues seen since ``since`` (in ``environment``, or every one), most events first, with
    their events since then counted from the per-minute buckets (whole minutes)."""
    counted = (
        select(ErrorCount.issue_id, func.sum(ErrorCount.events).label("n"))
        .where(ErrorCount.minute >= minute_of(since))
        .group_by(ErrorCount.issue_id)
        .subquery()
    )
    query = (
        select(ErrorIssue, ErrorProject.environment, func.coalesce(counted.c.n, 0))
        .join(ErrorProject, ErrorProject.id == ErrorIssue.project_id)
        .outerjoin(counted, counted.c.issue_id == ErrorIssue.id)
        .where(ErrorProject.app == app, ErrorIssue.last_seen >= since)
        .order_by(func.coalesce(counted.c.n, 0).desc(), ErrorIssue.last_seen.desc(), ErrorIssue.id)
        .limit(limit)
    )
    if environment is not None:
        query = query.where(ErrorProject.environment == environment)
    return [
        IssueView(
            id=issue.id,
            environment=env,
            title=issue.title,
            culprit=issue.culprit,
            level=issue.level,
            events=int(n),
            total_events=issue.events,
            first_seen=issue.first_seen,
            first_release=issue.first_release,
            last_seen=issue.last_seen,
            last_release=issue.last_release,
        )
        for issue, env, n in session.execute(query).all()
    ]


def prune_cutoffs(now: datetime, retention: float, counts_retention: float) -> tuple[datetime, datetime]:
    """Where raw events and per-minute counts end: both on minute boundaries (so counts stay exact)."""
    raw = minute_of(now - timedelta(seconds=math.ceil(retention)))
    counts = minute_of(now - timedelta(seconds=math.ceil(counts_retention)))
    return raw, counts


def prune(session: Session, *, raw_before: datetime, counts_before: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete up to ``batch`` raw events received before ``raw_before`` and counts before
    ``counts_before``; returns how many rows went (call again while it returns ``batch`` or more).
    ``raw_since`` moves first, so :func:`count_events` reads the counts for what is being pruned. Issues
    last seen before ``counts_before`` go too, once none of their events or counts is left."""
    session.execute(
        update(ErrorProject)
        .where(or_(ErrorProject.raw_since.is_(None), ErrorProject.raw_since < raw_before))
        .values(raw_since=raw_before)
    )
    old_events = select(ErrorEvent.id).where(ErrorEvent.received_at < raw_before).limit(batch)
    deleted = session.execute(delete(ErrorEvent).where(ErrorEvent.id.in_(old_events.scalar_subquery())))
    old_counts = delete(ErrorCount).where(ErrorCount.minute < counts_before)
    counted = session.execute(old_counts)
    # An issue last seen before the counts kept has nothing left to count; one whose raw events are not
    # all pruned yet goes in a later batch.
    stale_issues = (
        select(ErrorIssue.id)
        .where(
            ErrorIssue.last_seen < counts_before,
            ~select(ErrorEvent.id).where(ErrorEvent.issue_id == ErrorIssue.id).exists(),
            ~select(ErrorCount.issue_id).where(ErrorCount.issue_id == ErrorIssue.id).exists(),
        )
        .limit(batch)
    )
    forgotten = session.execute(delete(ErrorIssue).where(ErrorIssue.id.in_(stale_issues.scalar_subquery())))
    return sum(int(getattr(r, "rowcount", 0) or 0) for r in (deleted, counted, forgotten))
