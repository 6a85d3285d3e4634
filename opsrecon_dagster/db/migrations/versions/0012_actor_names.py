"""audit_log and environment_review_events: acted_by, who ran an operator's command

Revision ID: 0012_actor_names
Revises: 0011
Create Date: 2026-12-05 14:30:00.000000

Beside the role that acted (``actor``: operator, reconciler, ...), an operator's command
records who ran it (``OPSRECON_ACTOR``, else the OS user). Rows written before this
revision, and rows of the jobs and sensors, have none (NULL).

The revision id carries a name, not only a number, so that it cannot collide with another
0012 written at the same time (e.g. the PostgreSQL roles'); whichever lands second moves
its ``down_revision`` onto the other.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_actor_names"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = ("audit_log", "environment_review_events")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("acted_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("acted_by")
