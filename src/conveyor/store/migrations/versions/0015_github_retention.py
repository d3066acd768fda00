"""github retention: indexes to prune finished webhook deliveries and old CI results by time

Deliveries (each with GitHub's whole JSON body) and CI results were kept for ever. They are now pruned
after ``github.retention``; these indexes let a prune find the old rows without reading the tables
whole. Nothing existing changes.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_github_deliveries_finished", "github_deliveries", ["finished_at"])
    op.create_index("ix_ci_results_reported", "ci_results", ["reported_at"])


def downgrade() -> None:
    op.drop_index("ix_ci_results_reported", table_name="ci_results")
    op.drop_index("ix_github_deliveries_finished", table_name="github_deliveries")
