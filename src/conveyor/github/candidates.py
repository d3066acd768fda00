"""Reading candidates for people: what ``status``, ``why`` and the API say about commits waiting for CI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.store.tables import Candidate

WAITING = "waiting"


def candidate_json(c: Candidate) -> dict[str, Any]:
    return {
        "sha": c.sha,
        "state": c.state,
        "summary": c.summary,
        "since": c.created_at.isoformat() if c.created_at else None,
        "ci": c.ci,
        "commits": c.commits,
        "pull_requests": c.pull_requests,
        "compare_url": c.compare_url,
    }


def waiting_candidates(session: Session, apps: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per app, its candidates waiting for CI (newest first; a newer one supersedes the others)."""
    rows = session.scalars(
        select(Candidate).where(Candidate.app.in_(apps), Candidate.state == WAITING).order_by(Candidate.id.desc())
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for c in rows:
        found.setdefault(c.app, []).append(candidate_json(c))
    return found


def newest_candidate(session: Session, app: str) -> dict[str, Any] | None:
    c = session.scalars(select(Candidate).where(Candidate.app == app).order_by(Candidate.id.desc()).limit(1)).first()
    return candidate_json(c) if c is not None else None


def release_authors(commits: list[Any]) -> list[dict[str, Any]]:
    """Who wrote ``commits`` (a release's), once each, in order."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for c in commits:
        if isinstance(c, dict):
            author = {"name": c.get("author"), "email": c.get("email"), "login": c.get("login")}
            seen.setdefault((author["email"] or author["name"], author["login"]), author)
    return list(seen.values())
