"""operation_runs.stale_at; open rows indexed by it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:30:00.000000

When an open run becomes stale, stored by the lifecycle service, so the reconciler reads
exactly its batch in order. Existing open rows are due at once: the reconciler looks at each
one, decides it or, if it is still alive, stores when to look again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    with op.batch_alter_table("operation_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stale_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE operation_runs SET stale_at = last_progress_at "
        "WHERE status IN ('queued', 'running')"
    )
    op.create_index(
        "ix_operation_runs_open_due",
        "operation_runs",
        ["stale_at", "id"],
        unique=False,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    # Selection no longer reads open rows by last progress.
    op.drop_index("ix_operation_runs_open_progress", table_name="operation_runs")


def downgrade() -> None:
    op.create_index(
        "ix_operation_runs_open_progress",
        "operation_runs",
        ["status", "last_progress_at"],
        unique=False,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.drop_index("ix_operation_runs_open_due", table_name="operation_runs")
    with op.batch_alter_table("operation_runs", schema=None) as batch_op:
        batch_op.drop_column("stale_at")
