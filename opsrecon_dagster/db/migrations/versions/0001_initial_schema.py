"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 12:51:15.843700
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("slug", name=op.f("uq_workspaces_slug")),
    )
    op.create_table(
        "managed_environments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("partition_key", sa.String(length=140), nullable=False),
        sa.Column("readiness", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_managed_environments_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_managed_environments")),
        sa.UniqueConstraint("partition_key", name=op.f("uq_managed_environments_partition_key")),
        sa.UniqueConstraint(
            "workspace_id", "slug", name=op.f("uq_managed_environments_workspace_id_slug")
        ),
    )
    with op.batch_alter_table("managed_environments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_managed_environments_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "backup_schedules",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "managed_environment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cron", sa.String(length=64), nullable=False),
        sa.Column(
            "policy_types",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("retention_count", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_backup_schedules_managed_environment_id_managed_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_backup_schedules_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_schedules")),
    )
    with op.batch_alter_table("backup_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backup_schedules_managed_environment_id"),
            ["managed_environment_id"],
            unique=False,
        )

    op.create_table(
        "baseline_profiles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "managed_environment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "subjects",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_baseline_profiles_managed_environment_id_managed_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_baseline_profiles_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_baseline_profiles")),
    )
    with op.batch_alter_table("baseline_profiles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_baseline_profiles_managed_environment_id"),
            ["managed_environment_id"],
            unique=False,
        )

    op.create_table(
        "operation_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "managed_environment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("identity_key", sa.String(length=64), nullable=False),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_progress_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_operation_runs_managed_environment_id_managed_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_operation_runs_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operation_runs")),
    )
    with op.batch_alter_table("operation_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_operation_runs_dagster_run_id"), ["dagster_run_id"], unique=False
        )
        batch_op.create_index(
            "ix_operation_runs_open_progress",
            ["status", "last_progress_at"],
            unique=False,
            sqlite_where=sa.text("status IN ('queued', 'running')"),
            postgresql_where=sa.text("status IN ('queued', 'running')"),
        )
        batch_op.create_index(
            "ix_operation_runs_scope_created",
            ["workspace_id", "managed_environment_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_operation_runs_type_created", ["type", "created_at"], unique=False
        )
        batch_op.create_index(
            "uq_operation_runs_active_identity",
            ["identity_key"],
            unique=True,
            sqlite_where=sa.text("status IN ('queued', 'running')"),
            postgresql_where=sa.text("status IN ('queued', 'running')"),
        )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "operation_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "managed_environment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_audit_log_managed_environment_id_managed_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["operation_run_id"],
            ["operation_runs.id"],
            name=op.f("fk_audit_log_operation_run_id_operation_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_audit_log_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_log_operation_run_id"), ["operation_run_id"], unique=False
        )

    op.create_table(
        "backup_sets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "backup_schedule_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "managed_environment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "operation_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("captured_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["backup_schedule_id"],
            ["backup_schedules.id"],
            name=op.f("fk_backup_sets_backup_schedule_id_backup_schedules"),
        ),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_backup_sets_managed_environment_id_managed_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["operation_run_id"],
            ["operation_runs.id"],
            name=op.f("fk_backup_sets_operation_run_id_operation_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_backup_sets_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_sets")),
    )
    with op.batch_alter_table("backup_sets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backup_sets_operation_run_id"), ["operation_run_id"], unique=False
        )

    op.create_table(
        "baseline_snapshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "baseline_profile_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "managed_environment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "operation_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subject_count", sa.Integer(), nullable=False),
        sa.Column("captured_count", sa.Integer(), nullable=False),
        sa.Column("gap_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["baseline_profile_id"],
            ["baseline_profiles.id"],
            name=op.f("fk_baseline_snapshots_baseline_profile_id_baseline_profiles"),
        ),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_baseline_snapshots_managed_environment_id_managed_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["operation_run_id"],
            ["operation_runs.id"],
            name=op.f("fk_baseline_snapshots_operation_run_id_operation_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_baseline_snapshots_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_baseline_snapshots")),
    )
    with op.batch_alter_table("baseline_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_baseline_snapshots_operation_run_id"), ["operation_run_id"], unique=False
        )

    op.create_table(
        "environment_reviews",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "managed_environment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "operation_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_environment_reviews_managed_environment_id_managed_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["operation_run_id"],
            ["operation_runs.id"],
            name=op.f("fk_environment_reviews_operation_run_id_operation_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_environment_reviews_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environment_reviews")),
    )
    with op.batch_alter_table("environment_reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_environment_reviews_operation_run_id"),
            ["operation_run_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_environment_reviews_scope_fingerprint",
            ["managed_environment_id", "fingerprint"],
            unique=False,
        )
        batch_op.create_index(
            "uq_environment_reviews_mutable_fingerprint",
            ["workspace_id", "managed_environment_id", "fingerprint"],
            unique=True,
            sqlite_where=sa.text("status IN ('draft', 'ready', 'failed')"),
            postgresql_where=sa.text("status IN ('draft', 'ready', 'failed')"),
        )

    op.create_table(
        "inventory_coverage",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "operation_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "managed_environment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("policy_type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_inventory_coverage_managed_environment_id_managed_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["operation_run_id"],
            ["operation_runs.id"],
            name=op.f("fk_inventory_coverage_operation_run_id_operation_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_inventory_coverage_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_coverage")),
        sa.UniqueConstraint(
            "operation_run_id",
            "policy_type",
            name=op.f("uq_inventory_coverage_operation_run_id_policy_type"),
        ),
    )
    op.create_table(
        "inventory_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "managed_environment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("policy_type", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "last_seen_operation_run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["last_seen_operation_run_id"],
            ["operation_runs.id"],
            name=op.f("fk_inventory_items_last_seen_operation_run_id_operation_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["managed_environment_id"],
            ["managed_environments.id"],
            name=op.f("fk_inventory_items_managed_environment_id_managed_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_inventory_items_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_items")),
        sa.UniqueConstraint(
            "managed_environment_id",
            "policy_type",
            "external_id",
            name=op.f("uq_inventory_items_managed_environment_id_policy_type_external_id"),
        ),
    )
    with op.batch_alter_table("inventory_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inventory_items_last_seen_operation_run_id"),
            ["last_seen_operation_run_id"],
            unique=False,
        )

    op.create_table(
        "backup_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "backup_set_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("policy_type", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["backup_set_id"],
            ["backup_sets.id"],
            name=op.f("fk_backup_items_backup_set_id_backup_sets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_items")),
    )
    with op.batch_alter_table("backup_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backup_items_backup_set_id"), ["backup_set_id"], unique=False
        )

    op.create_table(
        "baseline_gaps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "baseline_snapshot_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("subject_key", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("candidate_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["baseline_snapshot_id"],
            ["baseline_snapshots.id"],
            name=op.f("fk_baseline_gaps_baseline_snapshot_id_baseline_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_baseline_gaps")),
    )
    with op.batch_alter_table("baseline_gaps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_baseline_gaps_baseline_snapshot_id"),
            ["baseline_snapshot_id"],
            unique=False,
        )

    op.create_table(
        "baseline_snapshot_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "baseline_snapshot_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("subject_key", sa.String(length=256), nullable=False),
        sa.Column(
            "inventory_item_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["baseline_snapshot_id"],
            ["baseline_snapshots.id"],
            name=op.f("fk_baseline_snapshot_items_baseline_snapshot_id_baseline_snapshots"),
        ),
        sa.ForeignKeyConstraint(
            ["inventory_item_id"],
            ["inventory_items.id"],
            name=op.f("fk_baseline_snapshot_items_inventory_item_id_inventory_items"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_baseline_snapshot_items")),
    )
    with op.batch_alter_table("baseline_snapshot_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_baseline_snapshot_items_baseline_snapshot_id"),
            ["baseline_snapshot_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("baseline_snapshot_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_baseline_snapshot_items_baseline_snapshot_id"))

    op.drop_table("baseline_snapshot_items")
    with op.batch_alter_table("baseline_gaps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_baseline_gaps_baseline_snapshot_id"))

    op.drop_table("baseline_gaps")
    with op.batch_alter_table("backup_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backup_items_backup_set_id"))

    op.drop_table("backup_items")
    with op.batch_alter_table("inventory_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inventory_items_last_seen_operation_run_id"))

    op.drop_table("inventory_items")
    op.drop_table("inventory_coverage")
    with op.batch_alter_table("environment_reviews", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_environment_reviews_mutable_fingerprint",
            sqlite_where=sa.text("status IN ('draft', 'ready', 'failed')"),
            postgresql_where=sa.text("status IN ('draft', 'ready', 'failed')"),
        )
        batch_op.drop_index("ix_environment_reviews_scope_fingerprint")
        batch_op.drop_index(batch_op.f("ix_environment_reviews_operation_run_id"))

    op.drop_table("environment_reviews")
    with op.batch_alter_table("baseline_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_baseline_snapshots_operation_run_id"))

    op.drop_table("baseline_snapshots")
    with op.batch_alter_table("backup_sets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backup_sets_operation_run_id"))

    op.drop_table("backup_sets")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_operation_run_id"))

    op.drop_table("audit_log")
    with op.batch_alter_table("operation_runs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_operation_runs_active_identity",
            sqlite_where=sa.text("status IN ('queued', 'running')"),
            postgresql_where=sa.text("status IN ('queued', 'running')"),
        )
        batch_op.drop_index("ix_operation_runs_type_created")
        batch_op.drop_index("ix_operation_runs_scope_created")
        batch_op.drop_index(
            "ix_operation_runs_open_progress",
            sqlite_where=sa.text("status IN ('queued', 'running')"),
            postgresql_where=sa.text("status IN ('queued', 'running')"),
        )
        batch_op.drop_index(batch_op.f("ix_operation_runs_dagster_run_id"))

    op.drop_table("operation_runs")
    with op.batch_alter_table("baseline_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_baseline_profiles_managed_environment_id"))

    op.drop_table("baseline_profiles")
    with op.batch_alter_table("backup_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backup_schedules_managed_environment_id"))

    op.drop_table("backup_schedules")
    with op.batch_alter_table("managed_environments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_managed_environments_workspace_id"))

    op.drop_table("managed_environments")
    op.drop_table("workspaces")
