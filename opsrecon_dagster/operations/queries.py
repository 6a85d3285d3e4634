"""Read-only queries and JSON views over operation runs (for the CLI and the UI).

The JSON shapes built here are the CLI's documented ``--json`` output (README, "Command
line"): keys are only ever added, never renamed or removed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, tuple_
from sqlalchemy.orm import Session, aliased

from opsrecon_dagster.db.bulk import one_of
from opsrecon_dagster.db.models import AuditLog, ManagedEnvironment, OperationRun, Workspace
from opsrecon_dagster.db.run_record import RunRecord
from opsrecon_dagster.operations.catalog import OperationCatalog
from opsrecon_dagster.operations.context import Evidence, RunContext
from opsrecon_dagster.operations.lifecycle import RunNotFoundError
from opsrecon_dagster.operations.reasons import Language, evidence_label

# Audit actions that record a decision (their details carry adapter and evidence).
DECISION_ACTIONS = frozenset({"run.completed", "run.reconciled", "run.corrected"})


@dataclass(frozen=True)
class RunFilter:
    """What ``page_runs`` selects: every field set narrows the listing (all are ANDed).

    ``since``/``until`` bound ``created_at`` (``since`` inclusive, ``until`` exclusive);
    ``before_id`` continues a listing after that run (keyset paging, newest first).
    """

    status: str | None = None
    outcome: str | None = None
    op_type: str | None = None
    workspace_id: int | None = None
    # Only runs of these workspaces (an actor's entitlements); None: every workspace.
    workspace_ids: frozenset[int] | None = None
    environment_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class RunPage:
    """One page of a listing; ``next_before_id`` continues it (None: this is the last page)."""

    runs: Sequence[OperationRun]
    next_before_id: int | None


def page_runs(session: Session, flt: RunFilter) -> RunPage:
    """Runs newest first (``created_at``, then ``id``), one page of at most ``flt.limit``.

    Every filter combination reads through an index in listing order (``created_at`` is
    the last column of the type, scope and creation-time indexes), so a page costs about
    its own size however long the history is; one extra row says whether a next page
    exists. Raises ``RunNotFoundError`` when ``before_id`` names no run.
    """
    order = (OperationRun.created_at.desc(), OperationRun.id.desc())
    stmt = select(OperationRun).order_by(*order).limit(flt.limit + 1)
    if flt.before_id is not None:
        cursor = session.scalar(
            select(OperationRun.created_at).where(OperationRun.id == flt.before_id)
        )
        if cursor is None:
            raise RunNotFoundError(flt.before_id)
        stmt = stmt.where(
            tuple_(OperationRun.created_at, OperationRun.id) < tuple_(cursor, flt.before_id)
        )
    if flt.status:
        stmt = stmt.where(OperationRun.status == flt.status)
    if flt.outcome:
        stmt = stmt.where(OperationRun.outcome == flt.outcome)
    if flt.op_type:
        stmt = stmt.where(OperationRun.type == flt.op_type)
    if flt.workspace_id is not None:
        stmt = stmt.where(OperationRun.workspace_id == flt.workspace_id)
    if flt.workspace_ids is not None:
        stmt = stmt.where(OperationRun.workspace_id.in_(sorted(flt.workspace_ids)))
    if flt.environment_id is not None:
        stmt = stmt.where(OperationRun.managed_environment_id == flt.environment_id)
    if flt.since is not None:
        stmt = stmt.where(OperationRun.created_at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(OperationRun.created_at < flt.until)
    rows = session.scalars(stmt).all()
    page = rows[: flt.limit]
    more = len(rows) > flt.limit
    return RunPage(page, page[-1].id if more and page else None)


def list_runs(
    session: Session,
    *,
    status: str | None = None,
    op_type: str | None = None,
    workspace_id: int | None = None,
    limit: int = 100,
) -> Sequence[OperationRun]:
    """Newest runs first, filtered by status, type and workspace (one page)."""
    flt = RunFilter(status=status, op_type=op_type, workspace_id=workspace_id, limit=limit)
    return page_runs(session, flt).runs


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


def partition_keys(session: Session, runs: Sequence[RunRecord]) -> dict[int, str]:
    """Partition keys of the environments the runs belong to, in one query."""
    env_ids = {r.managed_environment_id for r in runs if r.managed_environment_id is not None}
    if not env_ids:
        return {}
    rows = session.execute(
        select(ManagedEnvironment.id, ManagedEnvironment.partition_key).where(
            one_of(session, ManagedEnvironment.id, sorted(env_ids))
        )
    )
    return {env_id: key for env_id, key in rows}


def superseded_runs(session: Session, runs: Sequence[RunRecord]) -> set[int]:
    """The runs of which a newer run of the same type exists in the same environment (one
    query): a late decision about such a run must not cover the newer run in the UI."""
    ids = [r.id for r in runs if r.managed_environment_id is not None]
    if not ids:
        return set()
    newer = aliased(OperationRun)
    stmt = select(OperationRun.id).where(
        one_of(session, OperationRun.id, ids),
        exists().where(
            newer.managed_environment_id == OperationRun.managed_environment_id,
            newer.type == OperationRun.type,
            newer.id > OperationRun.id,
        ),
    )
    return set(session.scalars(stmt))


def _audit_entry(a: AuditLog) -> dict[str, Any]:
    """One audit row as shown: its columns, then what its details say (ids, codes, evidence)."""
    details = a.details if isinstance(a.details, dict) else {}
    previous = (
        {
            "outcome": details.get("previous_outcome"),
            "reason_code": details.get("previous_reason_code"),
        }
        if details.get("previous_outcome")
        else None
    )
    reported = (
        {
            "outcome": details.get("reported_outcome"),
            "reason_code": details.get("reported_reason_code"),
        }
        if details.get("reported_outcome")
        else None
    )
    return {
        "id": a.id,
        "created_at": _iso(a.created_at),
        "action": a.action,
        "actor": a.actor,
        "acted_by": a.acted_by,
        "from_status": a.from_status,
        "to_status": a.to_status,
        "outcome": a.outcome,
        "reason_code": a.reason_code,
        "adapter": details.get("adapter"),
        "dagster_run_id": details.get("dagster_run_id"),
        "evidence": details.get("evidence") if a.action in DECISION_ACTIONS else None,
        "previous_decision": previous,
        "reported": reported,
    }


def run_links(
    run: OperationRun,
    ctx: RunContext,
    partition_key: str | None,
    catalog: OperationCatalog,
    dagster_run_url: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Where the run's proof lives: its Dagster run, its asset partition, its artifacts."""
    try:
        asset_key = catalog.get(run.type).asset_family
    except ValueError:  # a type this code does not know (a row written elsewhere)
        asset_key = None
    evidence = ctx.decision.evidence if ctx.decision else Evidence()
    return {
        "dagster_run_id": run.dagster_run_id,
        "dagster_run_url": (
            dagster_run_url(run.dagster_run_id) if run.dagster_run_id and dagster_run_url else None
        ),
        "asset_key": asset_key,
        "asset_partition": partition_key if asset_key else None,
        "artifact_kind": evidence.artifact_kind,
        "artifact_ids": list(evidence.artifact_ids),
    }


def run_detail(
    session: Session,
    run: OperationRun,
    catalog: OperationCatalog | None = None,
    dagster_run_url: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Summary, decision, links, audit trail and raw context of one run (decision first).

    A context this product did not write (malformed) shows as no decision; the raw context
    is still returned as stored.
    """
    ctx = RunContext.load_or_empty(run.context)
    env = (
        session.get(ManagedEnvironment, run.managed_environment_id)
        if run.managed_environment_id is not None
        else None
    )
    key = env.partition_key if env else None
    ws = session.get(Workspace, run.workspace_id)
    audit = session.scalars(
        select(AuditLog).where(AuditLog.operation_run_id == run.id).order_by(AuditLog.id)
    ).all()
    return {
        **run_summary(run, key),
        "workspace_slug": ws.slug if ws else None,
        "decision": ctx.decision.model_dump(mode="json", exclude_none=True)
        if ctx.decision
        else None,
        "previous_decisions": [
            d.model_dump(mode="json", exclude_none=True) for d in ctx.previous_decisions
        ],
        "late_reports": [late.model_dump(mode="json") for late in ctx.late_completions],
        "links": run_links(run, ctx, key, catalog or OperationCatalog(), dagster_run_url),
        "audit": [_audit_entry(a) for a in audit],
        "context": run.context,
    }


def format_value(value: Any) -> str:
    """An evidence value as text: lists joined, mappings as ``key=value``, None as ``-``."""
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def evidence_lines(evidence: Mapping[str, Any] | None, language: Language) -> list[dict[str, str]]:
    """Evidence as labelled lines in ``language``, in the schema's field order: each with
    its stable ``key``, a translated ``label`` and the formatted ``value``."""
    if not evidence:
        return []
    order = list(Evidence.model_fields)
    keys = sorted(evidence, key=lambda k: order.index(k) if k in order else len(order))
    return [
        {"key": k, "label": evidence_label(k, language), "value": format_value(evidence[k])}
        for k in keys
    ]
