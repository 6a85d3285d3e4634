"""Read-only queries and JSON views over operation runs (for the CLI and the UI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from opsrecon_dagster.db.models import AuditLog, ManagedEnvironment, OperationRun, Workspace
from opsrecon_dagster.operations.context import RunContext


def list_runs(
    session: Session,
    *,
    status: str | None = None,
    op_type: str | None = None,
    workspace_id: int | None = None,
    limit: int = 100,
) -> Sequence[OperationRun]:
    """Newest runs first, filtered by status, type and workspace."""
    stmt = select(OperationRun).order_by(OperationRun.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(OperationRun.status == status)
    if op_type:
        stmt = stmt.where(OperationRun.type == op_type)
    if workspace_id is not None:
        stmt = stmt.where(OperationRun.workspace_id == workspace_id)
    return session.scalars(stmt).all()


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_summary(run: OperationRun, partition_key: str | None = None) -> dict[str, Any]:
    """The stable JSON shape of a run in listings."""
    return {
        "id": run.id,
        "type": run.type,
        "status": run.status,
        "outcome": run.outcome,
        "reason_code": run.reason_code,
        "workspace_id": run.workspace_id,
        "managed_environment_id": run.managed_environment_id,
        "partition_key": partition_key,
        "dagster_run_id": run.dagster_run_id,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "completed_at": _iso(run.completed_at),
    }


def partition_keys(session: Session, runs: Sequence[OperationRun]) -> dict[int, str]:
    """Partition keys of the environments the runs belong to, in one query."""
    env_ids = {r.managed_environment_id for r in runs if r.managed_environment_id is not None}
    if not env_ids:
        return {}
    rows = session.execute(
        select(ManagedEnvironment.id, ManagedEnvironment.partition_key).where(
            ManagedEnvironment.id.in_(env_ids)
        )
    )
    return {env_id: key for env_id, key in rows}


def superseded_runs(session: Session, runs: Sequence[OperationRun]) -> set[int]:
    """The runs of which a newer run of the same type exists in the same environment (one
    query): a late decision about such a run must not cover the newer run in the UI."""
    ids = [r.id for r in runs if r.managed_environment_id is not None]
    if not ids:
        return set()
    newer = aliased(OperationRun)
    stmt = select(OperationRun.id).where(
        OperationRun.id.in_(ids),
        exists().where(
            newer.managed_environment_id == OperationRun.managed_environment_id,
            newer.type == OperationRun.type,
            newer.id > OperationRun.id,
        ),
    )
    return set(session.scalars(stmt))


def run_detail(session: Session, run: OperationRun) -> dict[str, Any]:
    """Summary, decision, audit trail and raw context of one run (decision first)."""
    ctx = RunContext.load(run.context)
    env = (
        session.get(ManagedEnvironment, run.managed_environment_id)
        if run.managed_environment_id is not None
        else None
    )
    ws = session.get(Workspace, run.workspace_id)
    audit = session.scalars(
        select(AuditLog).where(AuditLog.operation_run_id == run.id).order_by(AuditLog.id)
    ).all()
    return {
        **run_summary(run, env.partition_key if env else None),
        "workspace_slug": ws.slug if ws else None,
        "decision": ctx.decision.model_dump(mode="json", exclude_none=True)
        if ctx.decision
        else None,
        "audit": [
            {
                "id": a.id,
                "action": a.action,
                "actor": a.actor,
                "from_status": a.from_status,
                "to_status": a.to_status,
                "outcome": a.outcome,
                "reason_code": a.reason_code,
                "created_at": _iso(a.created_at),
            }
            for a in audit
        ],
        "context": run.context,
    }
