"""error issue retention: an index to prune error issues not seen for ``errors.counts_retention``

Error issues were kept for ever, one per fingerprint, so an app whose error messages carry ids (each a
new fingerprint) grew the table without end. An issue whose last event is older than the counts kept is
now pruned with its counts; this index lets a prune find those issues without reading the table whole.
Nothing existing changes.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_error_issues_last_seen", "error_issues", ["last_seen"])


def downgrade() -> None:
    op.drop_index("ix_error_issues_last_seen", table_name="error_issues")
