"""operation_runs.once_key, unique

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:00:00.000000

A run that may exist only once, whatever its status (a backup schedule's window), stores its
identity key here; the unique index makes a second row for it impossible, also between
concurrent evaluations. NULL (every existing row) is never a duplicate on either database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operation_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("once_key", sa.String(length=64), nullable=True))
    op.create_index("uq_operation_runs_once_key", "operation_runs", ["once_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_operation_runs_once_key", table_name="operation_runs")
    with op.batch_alter_table("operation_runs", schema=None) as batch_op:
        batch_op.drop_column("once_key")
