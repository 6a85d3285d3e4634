"""SQLAlchemy models of the application database.

The migrations in ``db/migrations`` create exactly this schema (a test compares them).
Indexes that product promises rest on are named and commented where they are declared.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from opsrecon_dagster.enums import ReviewStatus, RunStatus

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
Id = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC values")
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one step to the text SQLite's ``DATETIME`` stores (the same text:
        ``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) instead of two: a batch binds thousands."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # The last value and its text: a batch binds the same instant (its decision time,
        # its audit time) for every row. One tuple, replaced whole (safe across threads).
        last: tuple[datetime | None, str | None] = (None, None)

        def process(value: datetime | None) -> str | None:
            nonlocal last
            seen = last
            if value is not None and value is seen[0]:
                return seen[1]
            naive = self.process_bind_param(value, dialect)
            text = None if naive is None else naive.isoformat(" ", "microseconds")
            last = (value, text)
            return text

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JsonDoc}


def _in(column: str, values: tuple[str, ...]) -> Any:
    """A partial-index predicate that both SQLite and PostgreSQL accept."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return text(f"{column} IN ({quoted})")


ACTIVE_RUN = _in("status", tuple(s.value for s in RunStatus.active()))
MUTABLE_REVIEW = _in("status", tuple(s.value for s in ReviewStatus.mutable()))


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ManagedEnvironment(Base):
    __tablename__ = "managed_environments"
    __table_args__ = (UniqueConstraint("workspace_id", "slug"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    # Dagster partition key, "<workspace-slug>.<environment-slug>": stable and readable.
    partition_key: Mapped[str] = mapped_column(String(140), unique=True)
    readiness: Mapped[str] = mapped_column(String(32), default="ready")
    # When readiness last changed: a readiness blocker counts for a run only if it already
    # held when the run started (set it with ``tenancy.set_readiness``).
    readiness_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    workspace: Mapped[Workspace] = relationship()


class OperationRun(Base):
    """One user-visible background operation. Written only by the lifecycle service."""

    __tablename__ = "operation_runs"
    __table_args__ = (
        # At most one active run per identity (type + scope + input hash): start() dedupes on it.
        Index(
            "uq_operation_runs_active_identity",
            "identity_key",
            unique=True,
            sqlite_where=ACTIVE_RUN,
            postgresql_where=ACTIVE_RUN,
        ),
        # At most one run ever per once key (a backup schedule's window): a window evaluated
        # again after its run completed finds that row instead of creating an orphan.
        Index("uq_operation_runs_once_key", "once_key", unique=True),
        # Open rows by due time: each reconciliation batch is one ordered range that reads
        # exactly the batch, whatever the backlog and the history; the overview reads the
        # open rows from it too.
        Index(
            "ix_operation_runs_open_due",
            "stale_at",
            "id",
            sqlite_where=ACTIVE_RUN,
            postgresql_where=ACTIVE_RUN,
        ),
        Index(
            "ix_operation_runs_scope_created",
            "workspace_id",
            "managed_environment_id",
            "created_at",
        ),
        Index("ix_operation_runs_type_created", "type", "created_at"),
        # Listings newest first (``queries.page_runs``) without a type or environment
        # filter: read in this order, a page costs its own size whatever the history.
        Index("ix_operation_runs_created", "created_at", "id"),
        # "Is there a newer run of this type in this environment?" (superseded runs): one
        # index probe per candidate, whatever the history.
        Index("ix_operation_runs_env_type_id", "managed_environment_id", "type", "id"),
        # The overview reads the last day's decisions and the latest ones by completion
        # time, so its cost follows the day's volume, not the history (covering: the day's
        # counts need no table lookups).
        Index(
            "ix_operation_runs_completed",
            "completed_at",
            "type",
            "outcome",
            "workspace_id",
            "managed_environment_id",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("managed_environments.id")
    )
    type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED.value)
    outcome: Mapped[str | None] = mapped_column(String(32))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    input_hash: Mapped[str] = mapped_column(String(64))
    identity_key: Mapped[str] = mapped_column(String(64))
    # The identity key of a run that may exist only once, whatever its status (``start(...,
    # once=True)``); NULL for runs that may be repeated once the previous one completed.
    once_key: Mapped[str | None] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    last_heartbeat_at: Mapped[datetime | None]
    # created_at, then started_at, then each heartbeat: staleness is measured from here.
    last_progress_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When an open row becomes stale by its type's threshold (``StalenessRule.due_at``), or
    # when the reconciler looks again at a row it found alive; NULL once completed.
    stale_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class AuditLog(Base):
    """One row per run status transition (and per late correction)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    operation_run_id: Mapped[int] = mapped_column(ForeignKey("operation_runs.id"), index=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("managed_environments.id")
    )
    action: Mapped[str] = mapped_column(String(48))
    # The role that acted (job, reconciler, late_correction, operator) ...
    actor: Mapped[str] = mapped_column(String(32))
    # ... and, for an operator's command, who ran it (``access.current_actor``: the
    # ``OPSRECON_ACTOR`` name, else the OS user); NULL for the jobs and the sensors.
    acted_by: Mapped[str | None] = mapped_column(String(128), default=None)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(32))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InventoryItem(Base):
    __tablename__ = "inventory_items"
    __table_args__ = (UniqueConstraint("managed_environment_id", "policy_type", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int] = mapped_column(ForeignKey("managed_environments.id"))
    policy_type: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(256))
    content_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_operation_run_id: Mapped[int] = mapped_column(
        ForeignKey("operation_runs.id"), index=True
    )


class InventoryCoverage(Base):
    """Per-run, per-policy-type result of an inventory sync."""

    __tablename__ = "inventory_coverage"
    __table_args__ = (UniqueConstraint("operation_run_id", "policy_type"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    operation_run_id: Mapped[int] = mapped_column(ForeignKey("operation_runs.id"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int] = mapped_column(ForeignKey("managed_environments.id"))
    policy_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    item_count: Mapped[int] = mapped_column(default=0)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class BaselineProfile(Base):
    __tablename__ = "baseline_profiles"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int] = mapped_column(
        ForeignKey("managed_environments.id"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    # {"subjects": [{"policy_type": ..., "display_name": ... | null}, ...]}
    subjects: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BaselineSnapshot(Base):
    __tablename__ = "baseline_snapshots"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    baseline_profile_id: Mapped[int] = mapped_column(ForeignKey("baseline_profiles.id"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int] = mapped_column(ForeignKey("managed_environments.id"))
    operation_run_id: Mapped[int] = mapped_column(ForeignKey("operation_runs.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    subject_count: Mapped[int] = mapped_column(default=0)
    captured_count: Mapped[int] = mapped_column(default=0)
    gap_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BaselineSnapshotItem(Base):
    __tablename__ = "baseline_snapshot_items"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    baseline_snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("baseline_snapshots.id"), index=True
    )
    subject_key: Mapped[str] = mapped_column(String(256))
    inventory_item_id: Mapped[int] = mapped_column(ForeignKey("inventory_items.id"))
    content_hash: Mapped[str] = mapped_column(String(64))


class BaselineGap(Base):
    __tablename__ = "baseline_gaps"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    baseline_snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("baseline_snapshots.id"), index=True
    )
    subject_key: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(32))
    candidate_count: Mapped[int] = mapped_column(default=0)


class BackupSchedule(Base):
    __tablename__ = "backup_schedules"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int] = mapped_column(
        ForeignKey("managed_environments.id"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(64))
    # {"policy_types": [...]}
    policy_types: Mapped[dict[str, Any]] = mapped_column(default=dict)
    retention_count: Mapped[int] = mapped_column(default=7)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BackupSet(Base):
    __tablename__ = "backup_sets"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    backup_schedule_id: Mapped[int] = mapped_column(ForeignKey("backup_schedules.id"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int] = mapped_column(ForeignKey("managed_environments.id"))
    operation_run_id: Mapped[int] = mapped_column(ForeignKey("operation_runs.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    item_count: Mapped[int] = mapped_column(default=0)
    captured_count: Mapped[int] = mapped_column(default=0)
    failed_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by a retention run (``backup.retention.prune``): the set's items are deleted, the
    # set row stays as the record of what was pruned, by which run.
    pruned_at: Mapped[datetime | None] = mapped_column(default=None)
    pruned_by_operation_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("operation_runs.id"), index=True, default=None
    )


class BackupItem(Base):
    __tablename__ = "backup_items"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    backup_set_id: Mapped[int] = mapped_column(ForeignKey("backup_sets.id"), index=True)
    policy_type: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    content_hash: Mapped[str | None] = mapped_column(String(64))


class EnvironmentReview(Base):
    __tablename__ = "environment_reviews"
    __table_args__ = (
        # At most one mutable review per (workspace, environment, fingerprint): a compose that
        # collides adopts the existing review instead of creating a second one.
        Index(
            "uq_environment_reviews_mutable_fingerprint",
            "workspace_id",
            "managed_environment_id",
            "fingerprint",
            unique=True,
            sqlite_where=MUTABLE_REVIEW,
            postgresql_where=MUTABLE_REVIEW,
        ),
        Index("ix_environment_reviews_scope_fingerprint", "managed_environment_id", "fingerprint"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int] = mapped_column(ForeignKey("managed_environments.id"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    operation_run_id: Mapped[int] = mapped_column(ForeignKey("operation_runs.id"), index=True)
    # The inputs the review was composed from (artifacts.review.ReviewSummary); its hash is
    # the fingerprint, which the proof checks.
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # When it became ready; kept after it is published, superseded or archived, so a review
    # that was composed still proves its run (a superseded draft never was).
    composed_at: Mapped[datetime | None] = mapped_column(default=None)
    # The fingerprint the run asked for, when the inputs had changed by compose time.
    requested_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    superseded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("environment_reviews.id"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewEvent(Base):
    """One row per review status change (compose, publish, supersede, archive): who and why."""

    __tablename__ = "environment_review_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("environment_reviews.id"), index=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int] = mapped_column(ForeignKey("managed_environments.id"))
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(32))
    # Who ran the operator's command (as ``AuditLog.acted_by``); NULL for a job's compose.
    acted_by: Mapped[str | None] = mapped_column(String(128), default=None)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    operation_run_id: Mapped[int | None] = mapped_column(ForeignKey("operation_runs.id"))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DecisionOutbox(Base):
    """Decisions whose Dagster events are not yet known to be written (an outbox).

    A row is written in the decision's own transaction and deleted once its events are
    acknowledged as written, so the table holds only the undelivered tail.
    """

    __tablename__ = "decision_outbox"
    # Ids never come back (SQLite would otherwise reuse the highest after a delete): "oldest
    # first" is id order, and a delivery in flight is named by its entries' ids.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    operation_run_id: Mapped[int] = mapped_column(ForeignKey("operation_runs.id"), index=True)
    # A ``reconciliation.outbox.DecisionEvent``: ids, codes and counts only.
    event: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When a deliverer may take the entry: at once for the reconciler's decisions, after a
    # grace for a job's own (its worker reports them itself); a claim moves it one lease on.
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The delivery that holds the entry (a claim token), and how often it was claimed: a
    # repeated delivery checks what Dagster already has, so nothing is written twice.
    claim: Mapped[str | None] = mapped_column(String(40), default=None)
    attempts: Mapped[int] = mapped_column(default=0)


class AccessGrant(Base):
    """An actor's entitlement on one workspace (``entitlements``): ``viewer`` reads it,
    ``operator`` reads and acts. While no row exists, entitlements are off."""

    __tablename__ = "access_grants"
    __table_args__ = (UniqueConstraint("actor", "workspace_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # A declared actor name (``access.check_actor``), as ``AuditLog.acted_by``.
    actor: Mapped[str] = mapped_column(String(128))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(128))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessEvent(Base):
    """One row per grant, revoke and refusal (``entitlements``): who, on which workspace,
    and a bounded ``entitlements.AccessDetails`` (command, role, grantee; never data)."""

    __tablename__ = "access_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    acted_by: Mapped[str] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EnvironmentEvent(Base):
    """One row per readiness change an operator made (``opsrecon environments readiness``):
    who, on which environment, and a bounded ``AuditDetails`` (the states, nothing else).
    Changes the provider's answers cause are audited on the run that found them."""

    __tablename__ = "environment_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    managed_environment_id: Mapped[int] = mapped_column(
        ForeignKey("managed_environments.id"), index=True
    )
    action: Mapped[str] = mapped_column(String(48))
    acted_by: Mapped[str] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertDelivery(Base):
    """A decision posted to the alert webhook: one row per operation run, so a repeated tick
    posts nothing twice. Pruned once older than the alerts' look-back window."""

    __tablename__ = "alert_deliveries"

    operation_run_id: Mapped[int] = mapped_column(ForeignKey("operation_runs.id"), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(32))
    reason_code: Mapped[str] = mapped_column(String(64))
    delivered_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
