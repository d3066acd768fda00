"""hold origin: holds raised from outside (an Alertmanager alert) name it, at most one open per origin

``holds.origin`` is empty for every hold made before this revision (all were raised by conveyor or by a
person). A partial unique index over the holds not lifted makes raising the same alert's hold twice
impossible, even when two notifications arrive at two processes at once.

Revision ID: 0013
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None

OPEN = sa.text("lifted_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=300), nullable=True))
    op.create_index("ix_holds_open_origin", "holds", ["origin"], unique=True, sqlite_where=OPEN, postgresql_where=OPEN)


def downgrade() -> None:
    op.drop_index("ix_holds_open_origin", table_name="holds")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_column("origin")
