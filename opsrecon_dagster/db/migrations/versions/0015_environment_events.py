"""environment_events: an operator's readiness changes, with their role grants

Revision ID: 0015_environment_events
Revises: 0014_access_grants
Create Date: 2026-12-05 18:30:00.000000

``opsrecon environments readiness ENV ready|disabled`` sets an environment's readiness (the
way back to ``ready`` once consent or a permission is granted in the tenant: until then
every run is blocked before it calls the provider, so no answer could set it back) and
records who did it here.

Grants on PostgreSQL (written out here, as in ``0013_roles``): every role reads the table;
only the operator (and the owner) appends to it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_environment_events"
down_revision = "0014_access_grants"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")

GRANTS: dict[str, tuple[str, ...]] = {
    "opsrecon_reader": ("SELECT",),
    "opsrecon_worker": ("SELECT",),
    "opsrecon_reconciler": ("SELECT",),
    "opsrecon_operator": ("SELECT", "INSERT"),
}


def upgrade() -> None:
    op.create_table(
        "environment_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("managed_environment_id", ID, nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("acted_by", sa.String(length=128), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_environment_events_workspace_id_workspaces"),
        ),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_environment_events_managed_environment_id_managed_environments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environment_events")),
    )
    op.create_index(
        op.f("ix_environment_events_managed_environment_id"),
        "environment_events",
        ["managed_environment_id"],
        unique=False,
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for role, privileges in GRANTS.items():
        op.execute(sa.text(f"GRANT {', '.join(privileges)} ON environment_events TO {role}"))
        if "INSERT" in privileges:
            op.execute(
                sa.text(
                    "DO $$ BEGIN EXECUTE format('GRANT USAGE ON SEQUENCE %s TO "
                    f"{role}', pg_get_serial_sequence('environment_events', 'id')); END $$"
                )
            )


def downgrade() -> None:
    """Drop the table (its grants go with it)."""
    op.drop_index(
        op.f("ix_environment_events_managed_environment_id"), table_name="environment_events"
    )
    op.drop_table("environment_events")
