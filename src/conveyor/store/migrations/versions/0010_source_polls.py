"""source polls: what conveyor last saw when it polled an app's remote, and whose turn it was

One row per app with ``poll:`` (made at its first turn): the turn a worker took (so several workers poll a
remote once per interval between them), the head the remote's branch pointed at, and why and since when
it has not answered. Nothing existing changes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_polls",
        sa.Column("app", sa.String(length=100), nullable=False),
        sa.Column("turn_at", sa.DateTime(), nullable=False),
        sa.Column("turn_by", sa.String(length=200), nullable=False),
        sa.Column("polled_at", sa.DateTime(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("head", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failing_since", sa.DateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("app", name=op.f("pk_source_polls")),
    )


def downgrade() -> None:
    op.drop_table("source_polls")
