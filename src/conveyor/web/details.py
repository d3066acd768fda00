"""Read models the CLI has no command for: one release with its deployments, one deployment with its steps
and each step's attempts. These functions only read; ``None`` means there is no such row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from conveyor.store.database import Database
from conveyor.store.tables import Deployment, Release, Step, StepAttempt
from conveyor.views import step_log_text


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def release_detail(db: Database, release_id: int) -> dict[str, Any] | None:
    with db.read() as session:
        release = session.get(Release, release_id)
        if release is None:
            return None
        deployments = session.scalars(
            select(Deployment).where(Deployment.release_id == release_id).order_by(Deployment.id)
        ).all()
        return {
            "id": release.id,
            "app": release.app,
            "sha": release.sha,
            "label": release.label,
            "ref": release.ref,
            "previous_release_id": release.previous_release_id,
            "created_at": iso(release.created_at),
            "created_by": release.created_by,
            "commits": [c for c in release.commits if isinstance(c, dict)],
            "pull_requests": release.pull_requests,
            "compare_url": release.compare_url,
            "deployments": [
                {
                    "id": d.id,
                    "environment": d.environment,
                    "state": d.state,
                    "queued_at": iso(d.queued_at),
                    "started_at": iso(d.started_at),
                    "finished_at": iso(d.finished_at),
                    "created_by": d.created_by,
                    "summary": d.summary,
                }
                for d in deployments
            ],
        }


def deployment_detail(db: Database, deployment_id: int) -> dict[str, Any] | None:
    with db.read() as session:
        row = session.execute(
            select(Deployment, Release)
            .join(Release, Release.id == Deployment.release_id)
            .where(Deployment.id == deployment_id)
        ).first()
        if row is None:
            return None
        d, r = row
        steps = session.scalars(select(Step).where(Step.deployment_id == deployment_id).order_by(Step.id)).all()
        attempts: dict[int, list[StepAttempt]] = {}
        if steps:
            for a in session.scalars(
                select(StepAttempt)
                .where(StepAttempt.step_id.in_([s.id for s in steps]))
                .order_by(StepAttempt.step_id, StepAttempt.attempt)
            ):
                attempts.setdefault(a.step_id, []).append(a)
        return {
            "id": d.id,
            "app": d.app,
            "environment": d.environment,
            "state": d.state,
            "release": {"id": r.id, "label": r.label, "sha": r.sha},
            "queued_at": iso(d.queued_at),
            "started_at": iso(d.started_at),
            "finished_at": iso(d.finished_at),
            "updated_at": iso(d.updated_at),
            "created_by": d.created_by,
            "summary": d.summary,
            "evidence": d.evidence,
            "steps": [_step(s, attempts.get(s.id, []), step_log_text(session, s)) for s in steps],
        }


def _step(s: Step, attempts: list[StepAttempt], log: str) -> dict[str, Any]:
    duration = (s.finished_at - s.started_at).total_seconds() if s.started_at and s.finished_at else None
    return {
        "id": s.id,
        "kind": s.kind,
        "name": s.name,
        "state": s.state,
        "attempt": s.attempt,
        "due_at": iso(s.due_at),
        "started_at": iso(s.started_at),
        "finished_at": iso(s.finished_at),
        "duration_seconds": duration,
        "lease_owner": s.lease_owner,
        "lease_expires_at": iso(s.lease_expires_at),
        "outcome": s.outcome,
        "measurements": s.measurements,
        "result": s.result,
        "log": log,
        "attempts": [
            {
                "attempt": a.attempt,
                "owner": a.owner,
                "started_at": iso(a.started_at),
                "finished_at": iso(a.finished_at),
                "outcome": a.outcome,
            }
            for a in attempts
        ],
    }
