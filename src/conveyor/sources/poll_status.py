"""What polling last saw of an app's remote, for ``conveyor why`` and the API: one read, one sentence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.config.resolved import AppConfig
from conveyor.repos import redact_url
from conveyor.store.tables import Release, SourcePoll


def polling_status(session: Session, app: AppConfig) -> dict[str, Any] | None:
    """None for an app without ``poll``; else its remote, interval, last answer or failure, and a summary."""
    if app.poll is None:
        return None
    row = session.get(SourcePoll, app.name)
    remote = redact_url(app.repo)
    head = row.head if row is not None else None
    label = (
        session.scalar(select(Release.label).where(Release.app == app.name, Release.sha == head))
        if head is not None
        else None
    )
    out: dict[str, Any] = {
        "remote": remote,
        "branch": app.branch,
        "every": app.poll,
        "polled_at": _iso(row.polled_at) if row is not None else None,
        "answered_at": _iso(row.answered_at) if row is not None else None,
        "head": head,
        "release": label,
        "error": row.error if row is not None else None,
        "failing_since": _iso(row.failing_since) if row is not None else None,
        "failures": row.failures if row is not None else 0,
    }
    out["summary"] = _summary(out)
    return out


def _summary(p: dict[str, Any]) -> str:
    where = f"{p['remote']} ({p['branch']}), every {p['every']:g}s"
    if p["polled_at"] is None:
        return f"polls {where}; not polled yet (no worker running?)"
    if p["failing_since"] is not None:
        return f"polling {where} fails since {_hhmm(p['failing_since'])}: {p['error']}"
    released = f"release {p['release']}" if p["release"] else "not released yet"
    return f"polled {where}; last at {_hhmm(p['polled_at'])}: {p['branch']} is at {p['head'][:12]} ({released})"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _hhmm(iso: str) -> str:
    return iso[:19].replace("T", " ") + " UTC"
