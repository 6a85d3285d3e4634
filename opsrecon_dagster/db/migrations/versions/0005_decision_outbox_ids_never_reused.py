"""decision_outbox ids never reused on SQLite

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:00:00.000000

SQLite hands out the highest id again once its row is deleted; an acknowledged entry's id
could then name a newer entry. AUTOINCREMENT keeps ids increasing (PostgreSQL sequences
already do). The table only holds undelivered entries; they are copied over.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "decision_outbox",
        recreate="always",
        table_kwargs={"sqlite_autoincrement": autoincrement},
    ):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
