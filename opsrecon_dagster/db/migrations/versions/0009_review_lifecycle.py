"""Review lifecycle: composed_at, requested_fingerprint, superseded_by_id, review events

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 14:10:00.000000

A review remembers when it was composed (so a later supersede or archive does not erase
the proof of the run that composed it), the fingerprint its run asked for when the inputs
had drifted, and which review superseded it. Every status change is a row in
environment_review_events.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("environment_reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("composed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("requested_fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("superseded_by_id", ID, nullable=True))
        batch_op.create_foreign_key(
            "fk_environment_reviews_superseded_by_id_environment_reviews",
            "environment_reviews",
            ["superseded_by_id"],
            ["id"],
        )
    # Reviews that reached ready before this revision were composed when created.
    op.execute(
        "UPDATE environment_reviews SET composed_at = created_at "
        "WHERE status IN ('ready', 'published', 'archived')"
    )
    op.create_table(
        "environment_review_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("review_id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("managed_environment_id", ID, nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("operation_run_id", ID, nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["environment_reviews.id"],
            name=op.f("fk_environment_review_events_review_id_environment_reviews"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_environment_review_events_workspace_id_workspaces"),
        ),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_environment_review_events_managed_environment_id_managed_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["operation_run_id"],
            ["operation_runs.id"],
            name=op.f("fk_environment_review_events_operation_run_id_operation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environment_review_events")),
    )
    op.create_index(
        op.f("ix_environment_review_events_review_id"),
        "environment_review_events",
        ["review_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_environment_review_events_review_id"), table_name="environment_review_events"
    )
    op.drop_table("environment_review_events")
    with op.batch_alter_table("environment_reviews", schema=None) as batch_op:
        batch_op.drop_constraint(
            "fk_environment_reviews_superseded_by_id_environment_reviews", type_="foreignkey"
        )
        batch_op.drop_column("superseded_by_id")
        batch_op.drop_column("requested_fingerprint")
        batch_op.drop_column("composed_at")
