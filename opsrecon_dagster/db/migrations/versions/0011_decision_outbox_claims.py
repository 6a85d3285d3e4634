"""decision_outbox: due time, claim token and attempts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 11:30:00.000000

Deliveries claim the entries they write (two deliverers never write the same entry), a job's
own decision waits a grace before anyone but its worker delivers it, and a repeated delivery
knows it is one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _batch() -> Any:
    # On SQLite a batch rebuilds the table: keep its AUTOINCREMENT (migration 0005).
    return op.batch_alter_table("decision_outbox", table_kwargs={"sqlite_autoincrement": True})


def upgrade() -> None:
    with _batch() as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("claim", sa.String(length=40), nullable=True))
        batch.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    op.execute("UPDATE decision_outbox SET due_at = created_at")
    with _batch() as batch:
        batch.alter_column("due_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.alter_column("attempts", existing_type=sa.Integer(), server_default=None)


def downgrade() -> None:
    with _batch() as batch:
        batch.drop_column("attempts")
        batch.drop_column("claim")
        batch.drop_column("due_at")
