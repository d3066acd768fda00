"""audit chain: operator actions with their reason, and every event sealed into a hash chain

Events gain ``action`` and ``reason`` (set on operator actions) and ``chain_seq`` and ``chain_hash``
(their place in the hash chain, see conveyor.domain.audit); ``event_chain`` holds the chain's head.

Existing events: the operator actions conveyor recorded before this revision are marked from what they
recorded then (a release; a deployment someone asked for or promoted, recognised by its message; a block
lifted by someone other than conveyor, whose message was the reason). Then every event is chained in id
order, a thousand at a time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from conveyor.domain.audit import GENESIS, EventContent, chain_hash

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OPERATOR_ACTION = sa.text("action IS NOT NULL")
BATCH = 1000

events = sa.table(
    "events",
    sa.column("id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("app", sa.String),
    sa.column("environment", sa.String),
    sa.column("release_id", sa.Integer),
    sa.column("deployment_id", sa.Integer),
    sa.column("actor", sa.String),
    sa.column("at", sa.DateTime),
    sa.column("message", sa.Text),
    sa.column("payload", sa.JSON),
    sa.column("action", sa.String),
    sa.column("reason", sa.Text),
    sa.column("chain_seq", sa.Integer),
    sa.column("chain_hash", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("action", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("chain_seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("chain_hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_events_chain_seq"), ["chain_seq"])
        batch_op.create_index(
            "ix_events_operator_actions", ["id"], postgresql_where=OPERATOR_ACTION, sqlite_where=OPERATOR_ACTION
        )
        batch_op.create_index(
            "ix_events_operator_actions_app",
            ["app", "id"],
            postgresql_where=OPERATOR_ACTION,
            sqlite_where=OPERATOR_ACTION,
        )
    op.create_table(
        "event_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_chain")),
    )
    mark_past_actions()
    seq, head = chain_existing_events()
    op.execute(
        sa.text("INSERT INTO event_chain (id, seq, hash) VALUES (1, :seq, :hash)").bindparams(seq=seq, hash=head)
    )


def mark_past_actions() -> None:
    op.execute("UPDATE events SET action = 'release' WHERE kind = 'release.created'")
    op.execute(
        "UPDATE events SET action = 'deploy' WHERE kind = 'deployment.created' AND actor <> 'conveyor' "
        "AND message LIKE '% asked to deploy % to %'"
    )
    op.execute(
        "UPDATE events SET action = 'promote' WHERE kind = 'deployment.created' AND actor <> 'conveyor' "
        "AND message LIKE '% promoted % from % to %'"
    )
    op.execute(
        "UPDATE events SET action = 'unblock', reason = message WHERE kind = 'hold.lifted' AND actor <> 'conveyor'"
    )


def chain_existing_events() -> tuple[int, str]:
    bind = op.get_bind()
    seq, previous, after = 0, GENESIS, 0
    while True:
        rows = bind.execute(sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(BATCH)).all()
        if not rows:
            return seq, previous
        sealed = []
        for row in rows:
            seq += 1
            content = EventContent(
                id=row.id,
                kind=row.kind,
                app=row.app,
                environment=row.environment,
                release_id=row.release_id,
                deployment_id=row.deployment_id,
                actor=row.actor,
                at=row.at,
                message=row.message,
                payload=row.payload if row.payload is not None else {},
                action=row.action,
                reason=row.reason,
            )
            previous = chain_hash(previous, content.canonical())
            sealed.append({"b_id": row.id, "b_seq": seq, "b_hash": previous})
        bind.execute(
            events.update()
            .where(events.c.id == sa.bindparam("b_id"))
            .values(chain_seq=sa.bindparam("b_seq"), chain_hash=sa.bindparam("b_hash")),
            sealed,
        )
        after = rows[-1].id


def downgrade() -> None:
    op.drop_table("event_chain")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_events_operator_actions_app", postgresql_where=OPERATOR_ACTION, sqlite_where=OPERATOR_ACTION
        )
        batch_op.drop_index(
            "ix_events_operator_actions", postgresql_where=OPERATOR_ACTION, sqlite_where=OPERATOR_ACTION
        )
        batch_op.drop_constraint(batch_op.f("uq_events_chain_seq"), type_="unique")
        batch_op.drop_column("chain_hash")
        batch_op.drop_column("chain_seq")
        batch_op.drop_column("reason")
        batch_op.drop_column("action")
