"""operation_runs index on (created_at, id)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 15:00:00.000000

`opsrecon runs list` pages newest first by (created_at, id), with or without filters and
time windows: without a type or environment filter this index gives that order, so a page
reads about its own size of the history instead of sorting all of it.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_operation_runs_created", "operation_runs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_operation_runs_created", table_name="operation_runs")
