"""backup_sets.pruned_at and pruned_by_operation_run_id

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:00:00.000000

Backup retention: a set beyond its schedule's retention_count is pruned by a
backup.retention.prune run; its items are deleted and the set row records when, and by
which run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

RUN_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("backup_sets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pruned_by_operation_run_id", RUN_ID, nullable=True))
        batch_op.create_foreign_key(
            "fk_backup_sets_pruned_by_operation_run_id_operation_runs",
            "operation_runs",
            ["pruned_by_operation_run_id"],
            ["id"],
        )
        batch_op.create_index(
            "ix_backup_sets_pruned_by_operation_run_id", ["pruned_by_operation_run_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("backup_sets", schema=None) as batch_op:
        batch_op.drop_index("ix_backup_sets_pruned_by_operation_run_id")
        batch_op.drop_constraint(
            "fk_backup_sets_pruned_by_operation_run_id_operation_runs", type_="foreignkey"
        )
        batch_op.drop_column("pruned_by_operation_run_id")
        batch_op.drop_column("pruned_at")
