"""alert_deliveries

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:00:00.000000

Decisions already posted to the alert webhook, one row per operation run.
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
        "alert_deliveries",
        sa.Column(
            "operation_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operation_run_id"],
            ["operation_runs.id"],
            name=op.f("fk_alert_deliveries_operation_run_id_operation_runs"),
        ),
        sa.PrimaryKeyConstraint("operation_run_id", name=op.f("pk_alert_deliveries")),
    )
    op.create_index(
        op.f("ix_alert_deliveries_delivered_at"), "alert_deliveries", ["delivered_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_deliveries_delivered_at"), table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
