"""error intake: Sentry-compatible projects and keys, issues, raw events and per-minute counts

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "error_projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app", sa.String(length=100), nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("raw_since", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_projects")),
        sa.UniqueConstraint("app", "environment", name=op.f("uq_error_projects_app")),
    )
    op.create_table(
        "error_issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("culprit", sa.Text(), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("first_release", sa.String(length=200), nullable=True),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("last_release", sa.String(length=200), nullable=True),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("last_spike_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["error_projects.id"], name=op.f("fk_error_issues_project_id_error_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_issues")),
        sa.UniqueConstraint("project_id", "fingerprint", name=op.f("uq_error_issues_project_id")),
    )
    op.create_table(
        "error_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("release", sa.String(length=200), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["error_issues.id"], name=op.f("fk_error_events_issue_id_error_issues")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["error_projects.id"], name=op.f("fk_error_events_project_id_error_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_events")),
    )
    op.create_index("ix_error_events_project_received", "error_events", ["project_id", "received_at"])
    op.create_index(op.f("ix_error_events_issue_id"), "error_events", ["issue_id"])
    op.create_index(op.f("ix_error_events_received_at"), "error_events", ["received_at"])
    op.create_table(
        "error_counts",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.DateTime(), nullable=False),
        sa.Column("release", sa.String(length=200), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["error_issues.id"], name=op.f("fk_error_counts_issue_id_error_issues")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["error_projects.id"], name=op.f("fk_error_counts_project_id_error_projects")
        ),
        sa.PrimaryKeyConstraint("issue_id", "minute", "release", name=op.f("pk_error_counts")),
    )
    op.create_index("ix_error_counts_project_minute", "error_counts", ["project_id", "minute"])


def downgrade() -> None:
    op.drop_table("error_counts")
    op.drop_table("error_events")
    op.drop_table("error_issues")
    op.drop_table("error_projects")
