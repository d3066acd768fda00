"""placements: one record per (app, environment) of what runs there; cancel and bake columns

``placements`` replaces ``latest_successes``, which only ever moved forward and so went on naming a
release after a rollback had replaced it. Each row says which release runs in a place (the one whose
deploy step last succeeded there), its health by its checks, and the last good release (the one that
most recently passed every check there). It is filled from the history, then ``latest_successes`` goes.

Also: ``deployments.cancel_requested_at`` (an operator's cancel of a running deployment),
``deployments.baking_since`` and ``bake_until`` (the bake tier), ``steps.cancel_requested``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

HEALTH_BY_STATE = {"succeeded": "healthy", "baking": "healthy", "failed": "failing", "verifying": "checking"}


def upgrade() -> None:
    placements = op.create_table(
        "placements",
        sa.Column("app", sa.String(length=100), nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("health", sa.String(length=20), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("good_release_id", sa.Integer(), nullable=True),
        sa.Column("good_deployment_id", sa.Integer(), nullable=True),
        sa.Column("good_since", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_placements_deployment_id_deployments")
        ),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], name=op.f("fk_placements_release_id_releases")),
        sa.ForeignKeyConstraint(
            ["good_deployment_id"], ["deployments.id"], name=op.f("fk_placements_good_deployment_id_deployments")
        ),
        sa.ForeignKeyConstraint(
            ["good_release_id"], ["releases.id"], name=op.f("fk_placements_good_release_id_releases")
        ),
        sa.PrimaryKeyConstraint("app", "environment", name=op.f("pk_placements")),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_requested_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("baking_since", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("bake_until", sa.DateTime(), nullable=True))
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False))
    rows = _from_history()
    if rows:
        op.bulk_insert(placements, rows)
    op.drop_table("latest_successes")


def _from_history() -> list[dict[str, Any]]:
    """Per place: current = the deployment whose deploy step succeeded last; last good = the deployment
    that succeeded last. Read once, worked out here, so it runs alike on SQLite and PostgreSQL."""
    bind = op.get_bind()
    deployments = sa.table(
        "deployments",
        *(sa.column(name, sa.Integer()) for name in ("id", "release_id")),
        *(sa.column(name, sa.String()) for name in ("app", "environment", "state")),
        *(sa.column(name, sa.DateTime()) for name in ("finished_at", "updated_at")),
    )
    steps = sa.table(
        "steps",
        *(sa.column(name, sa.Integer()) for name in ("deployment_id",)),
        *(sa.column(name, sa.String()) for name in ("kind", "state")),
        sa.column("finished_at", sa.DateTime()),
    )
    d, s = deployments.c, steps.c
    deployed = bind.execute(
        sa.select(d.id, d.app, d.environment, d.release_id, d.state, d.finished_at, d.updated_at)
        .add_columns(s.finished_at.label("deployed_at"))
        .select_from(deployments.join(steps, s.deployment_id == d.id))
        .where(s.kind == "deploy", s.state == "succeeded")
    ).all()
    succeeded = bind.execute(
        sa.select(d.id, d.app, d.environment, d.release_id, d.finished_at, d.updated_at).where(d.state == "succeeded")
    ).all()
    current: dict[tuple[str, str], Any] = {}
    for r in deployed:
        key = (r.app, r.environment)
        if key not in current or _order(r.deployed_at, r.id) > _order(current[key].deployed_at, current[key].id):
            current[key] = r
    good: dict[tuple[str, str], Any] = {}
    for r in succeeded:
        key = (r.app, r.environment)
        when = r.finished_at or r.updated_at
        if key not in good or _order(when, r.id) > _order(good[key].finished_at or good[key].updated_at, good[key].id):
            good[key] = r
    for key, r in good.items():  # a success with no recorded deploy step still ran there
        if key not in current:
            current[key] = r
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for (app, env), r in sorted(current.items()):
        g = good.get((app, env))
        rows.append(
            {
                "app": app,
                "environment": env,
                "release_id": r.release_id,
                "deployment_id": r.id,
                "health": HEALTH_BY_STATE.get(getattr(r, "state", "succeeded"), "unknown"),
                "since": getattr(r, "deployed_at", None) or r.finished_at or r.updated_at or now,
                "updated_at": now,
                "good_release_id": g.release_id if g else None,
                "good_deployment_id": g.id if g else None,
                "good_since": (g.finished_at or g.updated_at) if g else None,
            }
        )
    return rows


def _order(at: datetime | None, id_: int) -> tuple[datetime, int]:
    return (at or datetime.min, id_)


def downgrade() -> None:
    op.create_table(
        "latest_successes",
        sa.Column("app", sa.String(length=100), nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_latest_successes_deployment_id_deployments")
        ),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], name=op.f("fk_latest_successes_release_id_releases")),
        sa.PrimaryKeyConstraint("app", "environment", name=op.f("pk_latest_successes")),
    )
    op.execute(
        """
        INSERT INTO latest_successes (app, environment, release_id, deployment_id, since)
        SELECT app, environment, good_release_id, good_deployment_id, COALESCE(good_since, since)
        FROM placements WHERE good_release_id IS NOT NULL
        """
    )
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("bake_until")
        batch_op.drop_column("baking_since")
        batch_op.drop_column("cancel_requested_at")
    op.drop_table("placements")
