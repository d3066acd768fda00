"""step log chunks: a step's log is appended in pieces, never rewritten

A step's log used to be one column that every heartbeat rewrote with the new lines added (writes grew
with the square of the output) and nothing capped. Each attempt's log is now a sequence of chunks, each
with the number of characters before it; a running step keeps its head and a rolling tail. The logs
already in ``steps.log`` become one chunk each (attributed to the step's current attempt), then the
column goes (on SQLite this needs SQLite 3.35 or later, from 2021).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_log_chunks",
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["step_id"], ["steps.id"], name=op.f("fk_step_log_chunks_step_id_steps")),
        sa.PrimaryKeyConstraint("step_id", "attempt", "seq", name=op.f("pk_step_log_chunks")),
    )
    op.execute(
        """
        INSERT INTO step_log_chunks (step_id, attempt, seq, start, text)
        SELECT id, attempt, 0, 0, log FROM steps WHERE log <> ''
        """
    )
    # Not batch mode on SQLite: copying ``steps`` would drop the table that step_attempts and the new
    # chunks refer to, which its foreign keys refuse. SQLite drops a plain column itself (3.35 and later).
    op.execute("ALTER TABLE steps DROP COLUMN log")


def downgrade() -> None:
    op.add_column("steps", sa.Column("log", sa.Text(), nullable=False, server_default=""))
    bind = op.get_bind()
    chunks = sa.table(
        "step_log_chunks", sa.column("step_id"), sa.column("attempt"), sa.column("seq"), sa.column("text")
    )
    logs: dict[int, list[str]] = {}
    for row in bind.execute(sa.select(chunks).order_by(chunks.c.step_id, chunks.c.attempt, chunks.c.seq)):
        logs.setdefault(row.step_id, []).append(row.text)
    steps = sa.table("steps", sa.column("id"), sa.column("log"))
    for step_id, texts in logs.items():
        bind.execute(sa.update(steps).where(steps.c.id == step_id).values(log="".join(texts)))
    op.drop_table("step_log_chunks")
