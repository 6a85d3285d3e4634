"""What every artifact family shares: the run's scope, the proof result, precondition checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from opsrecon_dagster.db.models import ManagedEnvironment, OperationRun, Workspace
from opsrecon_dagster.db.run_record import RunRecord
from opsrecon_dagster.enums import Readiness, RunOutcome
from opsrecon_dagster.operations.context import Evidence, Progress, RunContext
from opsrecon_dagster.providers.base import EnvironmentRef, TenantProvider

Heartbeat = Callable[[Progress], None]

# The count of provider fields that lost content to redaction (providers/redaction.py).
REDACTED_FIELDS = "redacted_fields"

READINESS_REASONS = {
    Readiness.CONSENT_MISSING.value: "environment_consent_missing",
    Readiness.PERMISSION_MISSING.value: "environment_permission_missing",
    Readiness.DISABLED.value: "environment_disabled",
}


@dataclass(frozen=True)
class RunScope:
    """The run and the workspace/environment it belongs to, loaded once."""

    run_id: int
    workspace_id: int
    environment_id: int
    workspace_slug: str
    environment_slug: str
    partition_key: str
    readiness: str
    readiness_changed_at: datetime
    created_at: datetime  # the run's creation: the earliest moment it could have started
    context: RunContext

    @property
    def env_ref(self) -> EnvironmentRef:
        return EnvironmentRef(self.workspace_slug, self.environment_slug, self.partition_key)

    def base_evidence(self, **values: object) -> Evidence:
        return Evidence(
            workspace_id=self.workspace_id,
            managed_environment_id=self.environment_id,
            **values,
        )


class WorkspaceFields(Protocol):
    """What a run's scope reads of its workspace (a ``Workspace`` row, or plain values)."""

    @property
    def id(self) -> int: ...
    @property
    def slug(self) -> str: ...


class EnvironmentFields(Protocol):
    """What a run's scope reads of its environment (a ``ManagedEnvironment`` row, or plain
    values)."""

    @property
    def id(self) -> int: ...
    @property
    def workspace_id(self) -> int: ...
    @property
    def slug(self) -> str: ...
    @property
    def partition_key(self) -> str: ...
    @property
    def readiness(self) -> str: ...
    @property
    def readiness_changed_at(self) -> datetime: ...


def scope_of(
    run: RunRecord,
    workspace: WorkspaceFields | None,
    environment: EnvironmentFields | None,
    context: RunContext | None = None,
) -> RunScope:
    """The run's own scope from its rows; ``ValueError`` when it is missing or inconsistent
    (a malformed context raises pydantic's ``ValidationError``, also a ``ValueError``).
    ``context``: the run's stored context as the caller already validated it."""
    if run.managed_environment_id is None:
        raise ValueError(f"operation run {run.id} has no managed environment")
    if environment is None or workspace is None or environment.workspace_id != workspace.id:
        raise ValueError(f"operation run {run.id} has an inconsistent scope")
    return RunScope(
        run_id=run.id,
        workspace_id=workspace.id,
        environment_id=environment.id,
        workspace_slug=workspace.slug,
        environment_slug=environment.slug,
        partition_key=environment.partition_key,
        readiness=environment.readiness,
        readiness_changed_at=environment.readiness_changed_at,
        created_at=run.created_at,
        context=context if context is not None else RunContext.load(run.context),
    )


def load_scope(session: Session, run: OperationRun) -> RunScope:
    """Resolve one run's own scope (never a scope passed in from elsewhere)."""
    env = (
        session.get(ManagedEnvironment, run.managed_environment_id)
        if run.managed_environment_id is not None
        else None
    )
    return scope_of(run, session.get(Workspace, run.workspace_id), env)


@dataclass(frozen=True)
class Proof:
    """What the artifacts of one run prove. ``outcome`` None means: no proof (yet)."""

    outcome: RunOutcome | None
    reason_code: str
    evidence: Evidence
    counts: dict[str, int] = field(default_factory=dict)
    artifact_id: int | None = None


def readiness_blocker(scope: RunScope) -> str | None:
    """The reason code when the environment's readiness prevents any provider work now."""
    return READINESS_REASONS.get(scope.readiness)


def redaction_progress(provider: TenantProvider) -> dict[str, int]:
    """Progress counts of the provider's redactions so far (none while there were none).

    A job puts them into every progress it reports after a provider call, so the run's last
    progress, written before its artifacts, holds the run's whole count."""
    fields = provider.redacted_fields
    return {REDACTED_FIELDS: fields} if fields else {}


def redaction_counts(scope: RunScope) -> dict[str, int]:
    """Evidence counts of the redactions the run's job reported with its last progress
    (docs/decisions.md#redaction); none when there were none."""
    progress = scope.context.progress
    fields = progress.counts.get(REDACTED_FIELDS, 0) if progress is not None else 0
    return {REDACTED_FIELDS: fields} if fields else {}


def run_blocker(scope: RunScope) -> str | None:
    """The blocked rule every family shares when the run left no artifact
    (docs/decisions.md#blocked).

    The job's own precondition check, recorded before any provider call, decides. Without
    that record (the worker never got that far), only a readiness problem that already
    held when the run was created counts: a later change did not prevent this run.
    """
    check = scope.context.precondition
    if check is not None:
        return check.blocker
    reason = readiness_blocker(scope)
    if reason is not None and scope.readiness_changed_at <= scope.created_at:
        return reason
    return None


@dataclass(frozen=True)
class OwnArtifact:
    """The single artifact a run produced in its scope, or the proof that stands instead."""

    row: Any
    early: Proof | None
    base: dict[str, Any]
