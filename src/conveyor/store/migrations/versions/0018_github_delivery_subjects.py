"""github delivery subjects: what each webhook delivery was about, and when CI results were received

A delivery worked on records its repository, branch and commit, so ``conveyor deliveries`` and
``conveyor why`` can show what happened to a push (an ignored one said why only inside the database).
CI results gain ``received_at``, when conveyor stored them: retention prunes by it, where it pruned by
GitHub's own time for the result, so a result redelivered late, or reported by a skewed clock, was
deleted at once. Existing results take their reported time.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("github_deliveries") as batch:
        batch.add_column(sa.Column("repository", sa.String(300), nullable=True))
        batch.add_column(sa.Column("branch", sa.String(300), nullable=True))
        batch.add_column(sa.Column("sha", sa.String(40), nullable=True))
    op.create_index("ix_github_deliveries_repository", "github_deliveries", ["repository", "id"])
    with op.batch_alter_table("ci_results") as batch:
        batch.add_column(sa.Column("received_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE ci_results SET received_at = reported_at")
    op.drop_index("ix_ci_results_reported", table_name="ci_results")
    op.create_index("ix_ci_results_received", "ci_results", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_ci_results_received", table_name="ci_results")
    op.create_index("ix_ci_results_reported", "ci_results", ["reported_at"])
    with op.batch_alter_table("ci_results") as batch:
        batch.drop_column("received_at")
    op.drop_index("ix_github_deliveries_repository", table_name="github_deliveries")
    with op.batch_alter_table("github_deliveries") as batch:
        batch.drop_column("sha")
        batch.drop_column("branch")
        batch.drop_column("repository")
