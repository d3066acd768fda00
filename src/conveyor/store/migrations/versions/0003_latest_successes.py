"""latest successes: the newest success per (app, environment); indexes for the newest deployment per
place and for decisions by deployment

A planner pass used to find the newest success of every (app, environment) and the latest decision of
every deployment by grouping the whole history, and ``status`` scanned each place's history for its
newest deployment; all of that grew with every deploy. This revision keeps the newest successes in their
own table, filled here from the history, and adds the indexes the other two need. It also counts finished
steps per histogram bucket in ``step_durations`` (filled here from the steps), so a metrics scrape no
longer reads every step.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# the histogram's bounds in seconds when this revision was written; a revision never changes after release
BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
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
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_deployment_id", ["deployment_id", "id"], unique=False)
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index("ix_deployments_app_env_id", ["app", "environment", "id"], unique=False)
    # From the history: per (app, environment), the newest succeeded release and its latest deployment.
    op.execute(
        """
        INSERT INTO latest_successes (app, environment, release_id, deployment_id, since)
        SELECT d.app, d.environment, d.release_id, d.id, COALESCE(d.finished_at, d.updated_at)
        FROM deployments d
        WHERE d.state = 'succeeded'
          AND d.id = (
            SELECT MAX(o.id) FROM deployments o
            WHERE o.app = d.app AND o.environment = d.environment AND o.state = 'succeeded'
              AND o.release_id = (
                SELECT MAX(n.release_id) FROM deployments n
                WHERE n.app = d.app AND n.environment = d.environment AND n.state = 'succeeded'
              )
          )
        """
    )

    op.create_table(
        "step_durations",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("bucket", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "bucket", name=op.f("pk_step_durations")),
    )
    # From the history: every finished step that had started, in the bucket of its duration.
    postgres = op.get_bind().dialect.name == "postgresql"
    seconds = (
        "EXTRACT(EPOCH FROM (finished_at - started_at))"
        if postgres
        else "ROUND((julianday(finished_at) - julianday(started_at)) * 86400.0, 3)"  # julianday: ~50 µs steps
    )
    bucket = " ".join(f"WHEN {seconds} <= {bound!r} THEN {index}" for index, bound in enumerate(BUCKETS))
    op.execute(
        f"""
        INSERT INTO step_durations (kind, bucket, steps, seconds)
        SELECT kind, bucket, COUNT(*), SUM(seconds) FROM (
            SELECT kind, CASE {bucket} ELSE {len(BUCKETS)} END AS bucket, {seconds} AS seconds
            FROM steps
            WHERE state IN ('succeeded', 'failed', 'cancelled')
              AND started_at IS NOT NULL AND finished_at IS NOT NULL
        ) AS finished
        GROUP BY kind, bucket
        """
    )


def downgrade() -> None:
    op.drop_table("step_durations")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index("ix_deployments_app_env_id")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_deployment_id")
    op.drop_table("latest_successes")
