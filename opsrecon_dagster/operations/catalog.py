"""The operation catalog: every operation type, its artifact family and its stale thresholds.

This is the one place that says which types have a proof adapter. Everything else (the
lifecycle service, the reconciler, the CLI) looks types up here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class OperationType(StrEnum):
    INVENTORY_SYNC = "inventory.sync"
    BASELINE_CAPTURE = "baseline.capture"
    BACKUP_SCHEDULE_EXECUTE = "backup.schedule.execute"
    BACKUP_RETENTION_PRUNE = "backup.retention.prune"
    ENVIRONMENT_REVIEW_COMPOSE = "environment.review.compose"
    POLICY_SYNC = "policy.sync"
    BACKUP_SET_UPDATE = "backup_set.update"
    RESTORE_EXECUTE = "restore.execute"
    REPORT_GENERATE = "report.generate"


@dataclass(frozen=True)
class CatalogEntry:
    """What the product knows about one operation type."""

    type: OperationType
    label: str
    asset_family: str | None
    queued_stale_after: timedelta
    running_stale_after: timedelta
    # How long a run may wait in Dagster's own run queue (QUEUED / NOT_STARTED / STARTING)
    # before that wait itself counts as a failure. Long: a busy queue is not a dead worker.
    queue_wait_after: timedelta = timedelta(hours=6)
    # The proof rule of a type that is not an asset family (None: the asset family's).
    proof_family: str | None = None

    @property
    def supported(self) -> bool:
        """True when the type has a Dagster job that runs it (an asset family)."""
        return self.asset_family is not None

    @property
    def proven_by(self) -> str | None:
        """The family whose proof rule decides this type; None: generic stale handling."""
        return self.asset_family or self.proof_family


_MIN = timedelta(minutes=1)
# Jobs of the four families heartbeat every 15 s while they run (``operations.keepalive``),
# so a running row without a beat for 60 s (four missed beats) has lost its worker.
_BEATING = timedelta(seconds=60)

DEFAULT_ENTRIES: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        OperationType.INVENTORY_SYNC, "Inventory sync", "inventory_items", 10 * _MIN, _BEATING
    ),
    CatalogEntry(
        OperationType.BASELINE_CAPTURE,
        "Baseline capture",
        "baseline_snapshots",
        10 * _MIN,
        _BEATING,
    ),
    CatalogEntry(
        OperationType.BACKUP_SCHEDULE_EXECUTE,
        "Scheduled backup",
        "backup_sets",
        10 * _MIN,
        _BEATING,
    ),
    # Run by the backup job after a successful backup, in the same step: no asset and no
    # job of its own, but a proof rule (``artifacts.retention``), so it is decided from proof.
    CatalogEntry(
        OperationType.BACKUP_RETENTION_PRUNE,
        "Backup retention",
        None,
        10 * _MIN,
        _BEATING,
        proof_family="backup_retention",
    ),
    CatalogEntry(
        OperationType.ENVIRONMENT_REVIEW_COMPOSE,
        "Review composition",
        "environment_reviews",
        10 * _MIN,
        _BEATING,
    ),
    CatalogEntry(OperationType.POLICY_SYNC, "Policy sync", None, 10 * _MIN, 30 * _MIN),
    CatalogEntry(OperationType.BACKUP_SET_UPDATE, "Backup set update", None, 10 * _MIN, 30 * _MIN),
    CatalogEntry(OperationType.RESTORE_EXECUTE, "Restore", None, 10 * _MIN, 60 * _MIN),
    CatalogEntry(OperationType.REPORT_GENERATE, "Report generation", None, 10 * _MIN, 30 * _MIN),
)


class ThresholdOverride(BaseModel):
    """Stale thresholds for one type, in seconds; omitted values keep the default."""

    model_config = ConfigDict(extra="forbid")

    queued_seconds: int | None = Field(default=None, gt=0)
    running_seconds: int | None = Field(default=None, gt=0)
    queue_wait_seconds: int | None = Field(default=None, gt=0)


class CatalogConfigError(ValueError):
    """The threshold configuration is not valid; the message says what to fix."""


class OperationCatalog:
    """Lookup of catalog entries by type, with configured threshold overrides applied."""

    def __init__(self, entries: tuple[CatalogEntry, ...] = DEFAULT_ENTRIES) -> None:
        self._entries = {entry.type: entry for entry in entries}

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, ThresholdOverride]) -> OperationCatalog:
        """Return a catalog whose thresholds are replaced where ``overrides`` says so."""
        entries = {entry.type: entry for entry in DEFAULT_ENTRIES}
        for type_name, override in overrides.items():
            op_type = parse_operation_type(type_name)
            entry = entries[op_type]
            if override.queued_seconds is not None:
                entry = replace(
                    entry, queued_stale_after=timedelta(seconds=override.queued_seconds)
                )
            if override.running_seconds is not None:
                entry = replace(
                    entry, running_stale_after=timedelta(seconds=override.running_seconds)
                )
            if override.queue_wait_seconds is not None:
                entry = replace(
                    entry, queue_wait_after=timedelta(seconds=override.queue_wait_seconds)
                )
            entries[op_type] = entry
        return cls(tuple(entries.values()))

    @classmethod
    def from_json(cls, raw: str | None) -> OperationCatalog:
        """Build from the JSON form used by ``OPSRECON_STALE_THRESHOLDS``.

        Example: ``{"inventory.sync": {"running_seconds": 900}}``.
        """
        if not raw or not raw.strip():
            return cls()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CatalogConfigError(
                f"stale thresholds are not valid JSON (line {exc.lineno}, column {exc.colno})"
            ) from None
        if not isinstance(data, dict):
            raise CatalogConfigError("stale thresholds must be a JSON object keyed by type")
        try:
            overrides = {str(k): ThresholdOverride.model_validate(v) for k, v in data.items()}
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "value"
            raise CatalogConfigError(f"stale thresholds: {where}: {first['msg']}") from None
        return cls.with_overrides(overrides)

    def get(self, op_type: OperationType | str) -> CatalogEntry:
        """Return the entry for a type; raises ``UnknownOperationType`` for unknown names."""
        return self._entries[parse_operation_type(op_type)]

    def entries(self) -> tuple[CatalogEntry, ...]:
        """All entries, supported types first, in catalog order."""
        return tuple(self._entries.values())


class UnknownOperationType(CatalogConfigError):
    """A type name that is not in the catalog."""


def parse_operation_type(value: OperationType | str) -> OperationType:
    """Parse a type name, with an error listing the valid names."""
    if isinstance(value, OperationType):
        return value
    try:
        return OperationType(value)
    except ValueError:
        valid = ", ".join(t.value for t in OperationType)
        raise UnknownOperationType(f"unknown operation type {value!r} (valid: {valid})") from None
