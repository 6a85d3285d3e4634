"""What every artifact family shares: the run's scope, the proof result, precondition checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsrecon_dagster.db.models import ManagedEnvironment, OperationRun, Workspace
from opsrecon_dagster.operations.context import Evidence, Progress, RunContext
from opsrecon_dagster.operations.enums import Readiness, RunOutcome
from opsrecon_dagster.providers.base import EnvironmentRef

Heartbeat = Callable[[Progress], None]

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


def load_scope(session: Session, run: OperationRun) -> RunScope:
    """Resolve the run's own scope (never a scope passed in from elsewhere)."""
    if run.managed_environment_id is None:
        raise ValueError(f"operation run {run.id} has no managed environment")
    env = session.get(ManagedEnvironment, run.managed_environment_id)
    ws = session.get(Workspace, run.workspace_id)
    if env is None or ws is None or env.workspace_id != ws.id:
        raise ValueError(f"operation run {run.id} has an inconsistent scope")
    return RunScope(
        run_id=run.id,
        workspace_id=ws.id,
        environment_id=env.id,
        workspace_slug=ws.slug,
        environment_slug=env.slug,
        partition_key=env.partition_key,
        readiness=env.readiness,
        context=RunContext.load(run.context),
    )


@dataclass(frozen=True)
class Proof:
    """What the artifacts of one run prove. ``outcome`` None means: no proof (yet)."""

    outcome: RunOutcome | None
    reason_code: str
    evidence: Evidence
    counts: dict[str, int] = field(default_factory=dict)
    artifact_id: int | None = None


def readiness_blocker(scope: RunScope) -> str | None:
    """The reason code when the environment's readiness prevents any provider work."""
    return READINESS_REASONS.get(scope.readiness)


def count_wrong_scope(
    session: Session, model: type, run: OperationRun, *, run_column: str = "operation_run_id"
) -> int:
    """Rows tagged with this run id but in another workspace or environment (ignored, counted)."""
    col = getattr(model, run_column)
    stmt = (
        select(func.count())
        .select_from(model)
        .where(
            col == run.id,
            (model.workspace_id != run.workspace_id)  # type: ignore[attr-defined]
            | (model.managed_environment_id != run.managed_environment_id),  # type: ignore[attr-defined]
        )
    )
    return int(session.scalar(stmt) or 0)


@dataclass(frozen=True)
class OwnArtifact:
    """The single artifact a run produced in its scope, or the proof that stands instead."""

    row: Any
    early: Proof | None
    base: dict[str, Any]


def own_artifact(
    session: Session,
    model: Any,
    run: OperationRun,
    scope: RunScope,
    *,
    kind: str,
    blocker: Callable[[Session, RunScope], str | None],
    missing_reason: str,
) -> OwnArtifact:
    """Find the one artifact of ``model`` this run produced in its own scope, not before it.

    None found: ``blocked`` when a precondition fails now, else no proof yet. Several found:
    fail closed, whatever they say.
    """
    rows = session.scalars(
        select(model).where(
            model.operation_run_id == run.id,
            model.workspace_id == scope.workspace_id,
            model.managed_environment_id == scope.environment_id,
            model.created_at >= run.created_at,
        )
    ).all()
    base: dict[str, Any] = {
        "artifact_kind": kind,
        "rejected_wrong_scope": count_wrong_scope(session, model, run),
    }
    if not rows:
        reason = blocker(session, scope)
        evidence = scope.base_evidence(**base)
        if reason:
            return OwnArtifact(None, Proof(RunOutcome.BLOCKED, reason, evidence), base)
        return OwnArtifact(None, Proof(None, missing_reason, evidence), base)
    if len(rows) > 1:
        ids, total = Evidence.capped_ids([r.id for r in rows])
        evidence = scope.base_evidence(**base, considered_ids=ids, considered_total=total)
        return OwnArtifact(None, Proof(RunOutcome.FAILED, "proof_ambiguous", evidence), base)
    return OwnArtifact(rows[0], None, base)
