"""Workspace entitlements: access_grants and access_events, with their role grants

Revision ID: 0014_access_grants
Revises: 0013_roles
Create Date: 2026-12-06 10:00:00.000000

``access_grants``: an actor's role (``viewer`` or ``operator``) on one workspace, at most
one per (actor, workspace); while the table is empty, entitlements are off
(``opsrecon_dagster/entitlements.py``, README "Workspace entitlements").
``access_events``: one row per grant, revoke and refusal.

Grants on PostgreSQL (written out here, as in ``0013_roles``): every role reads both tables
(each command checks the grants; the worker and the reconciler read every table as before);
the reader, the reconciler and the operator append ``access_events`` (a command they run
that is refused records the refusal); only the operator (and the owner) changes
``access_grants`` (``opsrecon access grant`` and ``revoke``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_access_grants"
down_revision = "0013_roles"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")

READER = "opsrecon_reader"
WORKER = "opsrecon_worker"
RECONCILER = "opsrecon_reconciler"
OPERATOR = "opsrecon_operator"
ROLES = (READER, WORKER, RECONCILER, OPERATOR)
TABLES = ("access_grants", "access_events")

# role -> table -> privileges ("UPDATE" entries name their columns).
GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    READER: {"access_grants": ("SELECT",), "access_events": ("SELECT", "INSERT")},
    WORKER: {"access_grants": ("SELECT",), "access_events": ("SELECT",)},
    RECONCILER: {"access_grants": ("SELECT",), "access_events": ("SELECT", "INSERT")},
    OPERATOR: {
        # A grant given again with another role updates its row; revoke deletes it.
        "access_grants": ("SELECT", "INSERT", "UPDATE (role, granted_by, granted_at)", "DELETE"),
        "access_events": ("SELECT", "INSERT"),
    },
}


def upgrade() -> None:
    op.create_table(
        "access_grants",
        sa.Column("id", ID, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_by", sa.String(length=128), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_access_grants_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_grants")),
        sa.UniqueConstraint(
            "actor", "workspace_id", name=op.f("uq_access_grants_actor_workspace_id")
        ),
    )
    op.create_index(
        op.f("ix_access_grants_workspace_id"), "access_grants", ["workspace_id"], unique=False
    )
    op.create_table(
        "access_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("acted_by", sa.String(length=128), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_access_events_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_events")),
    )
    op.create_index(
        op.f("ix_access_events_workspace_id"), "access_events", ["workspace_id"], unique=False
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for role, tables in GRANTS.items():
        for table, privileges in tables.items():
            op.execute(sa.text(f"GRANT {', '.join(privileges)} ON {table} TO {role}"))
            if "INSERT" in privileges:
                op.execute(
                    sa.text(
                        "DO $$ BEGIN EXECUTE format('GRANT USAGE ON SEQUENCE %s TO "
                        f"{role}', pg_get_serial_sequence('{table}', 'id')); END $$"
                    )
                )


def downgrade() -> None:
    """Drop both tables (their grants go with them)."""
    op.drop_index(op.f("ix_access_events_workspace_id"), table_name="access_events")
    op.drop_table("access_events")
    op.drop_index(op.f("ix_access_grants_workspace_id"), table_name="access_grants")
    op.drop_table("access_grants")
