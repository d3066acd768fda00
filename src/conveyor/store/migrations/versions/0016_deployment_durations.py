"""deployment durations: deployments that ended, counted per environment, terminal state and bucket

The ``conveyor_deployment_duration_seconds`` histogram was computed at each scrape from every deployment
in the store: 0.4 s of a 0.75 s scrape after 100,000 deployments, growing without end. The deployments
that end are now counted as they end, like steps (revision 0003); this revision counts those already
there. Nothing existing changes.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# the histogram's bounds in seconds when this revision was written; a revision never changes after release
BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_durations",
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("bucket", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("deployments", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("environment", "state", "bucket", name=op.f("pk_deployment_durations")),
    )
    # From the history: every deployment that started and ended, in the bucket of its duration.
    postgres = op.get_bind().dialect.name == "postgresql"
    seconds = (
        "EXTRACT(EPOCH FROM (finished_at - started_at))"
        if postgres
        else "ROUND((julianday(finished_at) - julianday(started_at)) * 86400.0, 3)"  # julianday: ~50 µs steps
    )
    bucket = " ".join(f"WHEN {seconds} <= {bound!r} THEN {index}" for index, bound in enumerate(BUCKETS))
    op.execute(
        f"""
        INSERT INTO deployment_durations (environment, state, bucket, deployments, seconds)
        SELECT environment, state, bucket, COUNT(*), SUM(seconds) FROM (
            SELECT environment, state, CASE {bucket} ELSE {len(BUCKETS)} END AS bucket,
                   CASE WHEN {seconds} < 0 THEN 0 ELSE {seconds} END AS seconds
            FROM deployments
            WHERE state IN ('succeeded', 'failed', 'superseded', 'cancelled', 'rolled_back')
              AND started_at IS NOT NULL AND finished_at IS NOT NULL
        ) AS ended
        GROUP BY environment, state, bucket
        """
    )


def downgrade() -> None:
    op.drop_table("deployment_durations")
