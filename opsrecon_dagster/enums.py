"""Closed vocabularies shared by every layer (the database models included): the lowest
module of the package, importing none of it."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"

    @classmethod
    def active(cls) -> tuple[RunStatus, ...]:
        """Statuses from which a run can still change (the compare-and-set source states)."""
        return (cls.QUEUED, cls.RUNNING)


class RunOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    PARTIALLY_SUCCEEDED = "partially_succeeded"
    BLOCKED = "blocked"
    FAILED = "failed"


class Actor(StrEnum):
    """Who wrote a transition: the job itself, the reconciler, a late correction or an operator."""

    JOB = "job"
    RECONCILER = "reconciler"
    LATE_CORRECTION = "late_correction"
    OPERATOR = "operator"


class Readiness(StrEnum):
    """Provider connection readiness of a managed environment."""

    READY = "ready"
    CONSENT_MISSING = "consent_missing"
    PERMISSION_MISSING = "permission_missing"
    DISABLED = "disabled"


class CoverageStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class GapKind(StrEnum):
    MISSING = "missing"
    AMBIGUOUS = "ambiguous"
    CAPTURE_FAILED = "capture_failed"


class SnapshotStatus(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"


class BackupSetStatus(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"


class BackupItemStatus(StrEnum):
    CAPTURED = "captured"
    FAILED = "failed"


class ReviewStatus(StrEnum):
    DRAFT = "draft"
    READY = "ready"
    FAILED = "failed"
    PUBLISHED = "published"
    ARCHIVED = "archived"
    SUPERSEDED = "superseded"

    @classmethod
    def mutable(cls) -> tuple[ReviewStatus, ...]:
        """Statuses covered by the one-mutable-review-per-fingerprint index."""
        return (cls.DRAFT, cls.READY, cls.FAILED)
