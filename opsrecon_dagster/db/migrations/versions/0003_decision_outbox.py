"""decision_outbox; operation_runs indexes for the overview and superseded runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:30:00.000000

Decisions whose Dagster events are still to be delivered: written with the decision, deleted
when the events are acknowledged. The overview reads decisions by completion time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "operation_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "event",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operation_run_id"],
            ["operation_runs.id"],
            name=op.f("fk_decision_outbox_operation_run_id_operation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_outbox")),
    )
    op.create_index(
        op.f("ix_decision_outbox_operation_run_id"),
        "decision_outbox",
        ["operation_run_id"],
        unique=False,
    )

    op.create_index(
        "ix_operation_runs_completed",
        "operation_runs",
        ["completed_at", "type", "outcome", "workspace_id", "managed_environment_id"],
        unique=False,
    )

    op.create_index(
        "ix_operation_runs_env_type_id",
        "operation_runs",
        ["managed_environment_id", "type", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_operation_runs_env_type_id", table_name="operation_runs")
    op.drop_index("ix_operation_runs_completed", table_name="operation_runs")
    op.drop_index(op.f("ix_decision_outbox_operation_run_id"), table_name="decision_outbox")
    op.drop_table("decision_outbox")
