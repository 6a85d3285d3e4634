"""managed_environments.readiness_changed_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:00:00.000000

When the environment's readiness last changed: a readiness problem counts as a blocker for a
run only when it already held when the run started.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("managed_environments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("readiness_changed_at", sa.DateTime(timezone=True)))
    # Existing rows: the readiness they have is the one they were created with.
    op.execute("UPDATE managed_environments SET readiness_changed_at = created_at")
    with op.batch_alter_table("managed_environments", schema=None) as batch_op:
        batch_op.alter_column("readiness_changed_at", nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("managed_environments", schema=None) as batch_op:
        batch_op.drop_column("readiness_changed_at")
