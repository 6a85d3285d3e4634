"""Least-privilege database roles on PostgreSQL (a no-op on SQLite)

Revision ID: 0013_roles
Revises: 0012_actor_names
Create Date: 2026-12-05 17:30:00.000000

Four NOLOGIN group roles, granted to the login users a deployment gives each process
(README, "Running on PostgreSQL", "Database roles"; ``deploy/postgres/logins.sql``):

- ``opsrecon_reader``: what the read-only surfaces read (``runs list/show/explain``,
  ``reviews list/show``, the schema check every CLI command makes, the operations overview);
- ``opsrecon_worker``: what job steps write: their run's row transitions, its audit rows and
  outbox entry, the environment's readiness as the provider answered, the artifact tables;
- ``opsrecon_reconciler``: what the code server's sensors and ``opsrecon reconcile`` write:
  decisions on ``operation_runs`` (and the scheduled runs its sensors queue), audit rows,
  the decision outbox, the alert ledger; never an artifact table;
- ``opsrecon_operator``: the operators' CLI: the reconciler's writes plus moving reviews
  through their lifecycle and setting an environment's readiness.

The owner is the login that runs ``opsrecon db upgrade``: it owns the tables and alone
changes the schema, the tenancy and the configuration rows (workspaces, environments,
baseline profiles, backup schedules).

Roles are cluster-wide, grants are per database: a role that already exists (created by an
administrator, or by this migration in another database of the same cluster) is used as it
is; creating it is left to a concurrent migration that won the race. Updates are granted on
the columns the writers change, never on ids, scopes or creation times. Every table a later
migration adds needs its grants there (``opsrecon_dagster_tests/db/test_roles.py`` lists
every table's expected privileges and fails on one it does not know).

The grants are written out here, not imported: a migration must grant what its schema has,
whatever later code says.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_roles"
down_revision = "0012_actor_names"
branch_labels = None
depends_on = None

READER = "opsrecon_reader"
WORKER = "opsrecon_worker"
RECONCILER = "opsrecon_reconciler"
OPERATOR = "opsrecon_operator"
ROLES = (READER, WORKER, RECONCILER, OPERATOR)

# The tables whose ids come from a sequence (every one but alert_deliveries, keyed by its
# run, and alembic_version): an INSERT needs USAGE on the table's sequence.
SEQUENCED = (
    "workspaces",
    "managed_environments",
    "operation_runs",
    "audit_log",
    "inventory_items",
    "inventory_coverage",
    "baseline_profiles",
    "baseline_snapshots",
    "baseline_snapshot_items",
    "baseline_gaps",
    "backup_schedules",
    "backup_sets",
    "backup_items",
    "environment_reviews",
    "environment_review_events",
    "decision_outbox",
)
ALL_TABLES = (*SEQUENCED, "alert_deliveries", "alembic_version")

# Columns each writer changes on a row it did not insert (column-level UPDATE).
RUN_JOB_COLUMNS = (  # mark_running, heartbeat, complete, a late report's context
    "status",
    "dagster_run_id",
    "started_at",
    "last_heartbeat_at",
    "last_progress_at",
    "stale_at",
    "context",
    "outcome",
    "reason_code",
    "completed_at",
)
RUN_DECISION_COLUMNS = (  # decisions, restamping due times, Dagster runs found or submitted
    "status",
    "outcome",
    "reason_code",
    "context",
    "completed_at",
    "stale_at",
    "dagster_run_id",
)
READINESS_COLUMNS = ("readiness", "readiness_changed_at")
OUTBOX_CLAIM_COLUMNS = ("claim", "due_at", "attempts")
ALERT_COLUMNS = ("outcome", "reason_code", "delivered_at")
REVIEW_COLUMNS = ("status", "updated_at", "composed_at", "superseded_by_id")

# role -> table -> privileges; "UPDATE" entries name their columns. SELECT on a table a role
# writes is needed as well (RETURNING ids, WHERE clauses of its updates and deletes).
_DECISIONS: dict[str, tuple[str, ...]] = {
    "operation_runs": ("SELECT", "INSERT", f"UPDATE ({', '.join(RUN_DECISION_COLUMNS)})"),
    "audit_log": ("SELECT", "INSERT"),
    "decision_outbox": (
        "SELECT",
        "INSERT",
        f"UPDATE ({', '.join(OUTBOX_CLAIM_COLUMNS)})",
        "DELETE",
    ),
    "alert_deliveries": ("SELECT", "INSERT", f"UPDATE ({', '.join(ALERT_COLUMNS)})", "DELETE"),
}
GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    READER: {
        table: ("SELECT",)
        for table in (
            "alembic_version",
            "workspaces",
            "managed_environments",
            "operation_runs",
            "audit_log",
            "environment_reviews",
            "environment_review_events",
        )
    },
    WORKER: {
        **{table: ("SELECT",) for table in ALL_TABLES if table != "alert_deliveries"},
        "operation_runs": ("SELECT", "INSERT", f"UPDATE ({', '.join(RUN_JOB_COLUMNS)})"),
        "audit_log": ("SELECT", "INSERT"),
        "decision_outbox": ("SELECT", "INSERT", "DELETE"),  # its own entry, acknowledged
        "managed_environments": ("SELECT", f"UPDATE ({', '.join(READINESS_COLUMNS)})"),
        "inventory_items": (
            "SELECT",
            "INSERT",
            "UPDATE (display_name, content_hash, last_seen_at, last_seen_operation_run_id)",
        ),
        "inventory_coverage": ("SELECT", "INSERT"),
        "baseline_snapshots": ("SELECT", "INSERT"),
        "baseline_snapshot_items": ("SELECT", "INSERT"),
        "baseline_gaps": ("SELECT", "INSERT"),
        "backup_sets": ("SELECT", "INSERT", "UPDATE (pruned_at, pruned_by_operation_run_id)"),
        "backup_items": ("SELECT", "INSERT", "DELETE"),  # retention deletes a pruned set's
        "environment_reviews": ("SELECT", "INSERT", f"UPDATE ({', '.join(REVIEW_COLUMNS)})"),
        "environment_review_events": ("SELECT", "INSERT"),
    },
    RECONCILER: {
        **{table: ("SELECT",) for table in ALL_TABLES},
        **_DECISIONS,
    },
    OPERATOR: {
        **{table: ("SELECT",) for table in ALL_TABLES},
        **_DECISIONS,
        # Publishing locks the environment's row (FOR UPDATE needs an UPDATE privilege);
        # its readiness is the operator's to set to ``disabled`` as well.
        "managed_environments": ("SELECT", f"UPDATE ({', '.join(READINESS_COLUMNS)})"),
        "environment_reviews": ("SELECT", f"UPDATE ({', '.join(REVIEW_COLUMNS)})"),
        "environment_review_events": ("SELECT", "INSERT"),
    },
}


def create_role_sql(name: str) -> str:
    """The statement that creates the NOLOGIN group role unless it exists. A concurrent
    migration of another database in the cluster may create it first (``duplicate_object``,
    or ``unique_violation`` when both inserted at once), which is as good. A login without
    CREATEROLE gets an error that says what to do instead."""
    return f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{name}') THEN
                CREATE ROLE {name} NOLOGIN;
            END IF;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role {name} does not exist, and this login may not '
                    'create it: create the roles first (README, Running on PostgreSQL), '
                    'or migrate with a login that has CREATEROLE';
        END
        $$
    """


def _sequence(table: str) -> str | None:
    """The sequence behind the table's ``id`` (serial or identity), schema-qualified."""
    found: str | None = (
        op.get_bind()
        .execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table})
        .scalar()
    )
    return found


def _on_schema(statement: str) -> str:
    """``statement`` (``%I``: the current schema) where this login may grant on the schema:
    PUBLIC holds USAGE on ``public`` by default, and a schema owned by someone else is the
    administrator's to open."""
    return (
        "DO $$ BEGIN IF has_schema_privilege(current_schema(), 'USAGE WITH GRANT OPTION') "
        f"THEN EXECUTE format('{statement}', current_schema()); END IF; END $$"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no roles: the embedded default is one local file
    for role in ROLES:
        op.execute(sa.text(create_role_sql(role)))
    op.execute(sa.text(_on_schema(f"GRANT USAGE ON SCHEMA %I TO {', '.join(ROLES)}")))
    for role, tables in GRANTS.items():
        for table, privileges in tables.items():
            op.execute(sa.text(f"GRANT {', '.join(privileges)} ON {table} TO {role}"))
            inserts = "INSERT" in privileges and table in SEQUENCED
            sequence = _sequence(table) if inserts else None
            if sequence is not None:
                op.execute(sa.text(f"GRANT USAGE ON SEQUENCE {sequence} TO {role}"))


def downgrade() -> None:
    """Revoke this database's grants; the roles stay (they are cluster-wide: other databases
    may use them, and login users may be members). Drop them by hand when none does."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for role in ROLES:
        for table in ALL_TABLES:
            op.execute(sa.text(f"REVOKE ALL ON {table} FROM {role}"))
        for table in SEQUENCED:
            sequence = _sequence(table)
            if sequence is not None:
                op.execute(sa.text(f"REVOKE ALL ON SEQUENCE {sequence} FROM {role}"))
    op.execute(sa.text(_on_schema(f"REVOKE USAGE ON SCHEMA %I FROM {', '.join(ROLES)}")))
