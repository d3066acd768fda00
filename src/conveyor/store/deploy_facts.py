"""What a check may need to know about the deploy it checks, read from the step and deployment rows.

For one deployment: when its deploy step started and finished, and which release ran in its (app,
environment) before it (the newest other deployment there whose deploy step succeeded before this
one's started) with the moment that one's deploy finished. Checks that compare before with after (the
``error_rate`` check) take their windows from these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.domain.model import StepKind, StepState
from conveyor.store.tables import Deployment, Release, Step

__all__ = ["DeployFacts", "deploy_facts"]


@dataclass(frozen=True)
class DeployFacts:
    deploy_started_at: datetime | None = None
    deployed_at: datetime | None = None
    previous_version: str | None = None
    previous_deployed_at: datetime | None = None


def deploy_facts(session: Session, deployment_id: int) -> DeployFacts:
    deployment = session.get(Deployment, deployment_id)
    if deployment is None:
        return DeployFacts()
    own = session.execute(
        select(Step.started_at, Step.finished_at)
        .where(
            Step.deployment_id == deployment_id,
            Step.kind == StepKind.DEPLOY.value,
            Step.state == StepState.SUCCEEDED.value,
        )
        .order_by(Step.id.desc())
        .limit(1)
    ).first()
    started, finished = (own.started_at, own.finished_at) if own else (None, None)
    before = started or finished
    previous = None
    if before is not None:
        previous = session.execute(
            select(Release.label, Step.finished_at)
            .join(Deployment, Deployment.id == Step.deployment_id)
            .join(Release, Release.id == Deployment.release_id)
            .where(
                Deployment.app == deployment.app,
                Deployment.environment == deployment.environment,
                Deployment.id != deployment_id,
                Step.kind == StepKind.DEPLOY.value,
                Step.state == StepState.SUCCEEDED.value,
                Step.finished_at <= before,
            )
            .order_by(Step.finished_at.desc(), Step.id.desc())
            .limit(1)
        ).first()
    return DeployFacts(
        deploy_started_at=started,
        deployed_at=finished,
        previous_version=previous.label if previous else None,
        previous_deployed_at=previous.finished_at if previous else None,
    )
