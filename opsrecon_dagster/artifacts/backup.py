"""Scheduled backup: one backup set per run, one item per policy object, captured or failed."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts.common import (
    Heartbeat,
    Proof,
    RunScope,
    readiness_blocker,
    redaction_counts,
    redaction_progress,
)
from opsrecon_dagster.artifacts.proofview import ProofView, artifact_proof
from opsrecon_dagster.db.models import BackupItem, BackupSet
from opsrecon_dagster.db.run_record import RunRecord
from opsrecon_dagster.enums import BackupItemStatus, BackupSetStatus, RunOutcome
from opsrecon_dagster.operations.context import Progress
from opsrecon_dagster.providers.base import ProviderError, TenantProvider

LISTING_FAILED = "*"  # external id of the item that records a failed listing of a whole type


class SchedulePolicyTypes(BaseModel):
    """The JSON stored in ``backup_schedules.policy_types``."""

    model_config = ConfigDict(extra="forbid")

    policy_types: list[str] = Field(default_factory=list, max_length=64)


def precondition_blocker(view: ProofView, scope: RunScope) -> str | None:
    """Why a backup cannot run at all (``blocked``), or None."""
    schedule = view.schedule(scope)
    if schedule is None:
        return "backup_schedule_missing"
    if not schedule.enabled:
        return "backup_schedule_disabled"
    return readiness_blocker(scope)


def execute_backup(
    sessions: sessionmaker[Session],
    scope: RunScope,
    provider: TenantProvider,
    heartbeat: Heartbeat,
) -> None:
    """Capture every object of the schedule's types; write the set and its items at once."""
    with sessions() as session:
        view, _run, _scope = ProofView.for_run(session, scope.run_id)
        if precondition_blocker(view, scope) is not None:
            return
        schedule = view.schedule(scope)
        assert schedule is not None
        types = SchedulePolicyTypes.model_validate(schedule.policy_types).policy_types
    items: list[BackupItem] = []
    for policy_type in types:
        items.extend(_capture_type(provider, scope, policy_type))
        done = {"items_done": len(items)}
        heartbeat(Progress(phase="capturing", counts=done | redaction_progress(provider)))
    _write_set(sessions, scope, schedule.id, items)


def _capture_type(provider: TenantProvider, scope: RunScope, policy_type: str) -> list[BackupItem]:
    """One item per object of the type (captured, or failed with the provider's reason);
    a listing that fails is one failed item standing for the whole type."""
    try:
        listed = list(provider.list_policies(scope.env_ref, policy_type))
    except ProviderError as err:
        failed = BackupItemStatus.FAILED.value
        return [
            BackupItem(
                policy_type=policy_type,
                external_id=LISTING_FAILED,
                status=failed,
                reason_code=err.reason_code,
            )
        ]
    items = []
    for obj in listed:
        item = BackupItem(policy_type=policy_type, external_id=obj.external_id)
        try:
            item.content_hash = provider.fetch_policy(
                scope.env_ref, policy_type, obj.external_id
            ).content_hash
            item.status = BackupItemStatus.CAPTURED.value
        except ProviderError as err:
            item.status = BackupItemStatus.FAILED.value
            item.reason_code = err.reason_code
        items.append(item)
    return items


def _write_set(
    sessions: sessionmaker[Session], scope: RunScope, schedule_id: int, items: list[BackupItem]
) -> None:
    """One transaction: the backup set row, with the status its items support, then them."""
    captured = sum(i.status == BackupItemStatus.CAPTURED.value for i in items)
    if captured and captured == len(items):
        status = BackupSetStatus.COMPLETE
    elif captured:
        status = BackupSetStatus.PARTIAL
    else:
        status = BackupSetStatus.FAILED
    with sessions.begin() as session:
        backup_set = BackupSet(
            backup_schedule_id=schedule_id,
            workspace_id=scope.workspace_id,
            managed_environment_id=scope.environment_id,
            operation_run_id=scope.run_id,
            status=status.value,
            item_count=len(items),
            captured_count=captured,
            failed_count=len(items) - captured,
            created_at=datetime.now(UTC),
        )
        session.add(backup_set)
        session.flush()
        for item in items:
            item.backup_set_id = backup_set.id
            session.add(item)


def backup_proof(view: ProofView, run: RunRecord, scope: RunScope) -> Proof:
    """Decide from the backup set this run produced in its own scope (docs/decisions.md#backup).

    The set's item rows decide, not its status field: a set marked complete with no
    captured item is not a successful backup.
    """
    found = view.own_artifact(
        BackupSet, run, scope, kind="backup_set", missing_reason="backup_no_set"
    )
    if found.early is not None:
        return found.early
    bset: BackupSet = found.row
    by_status = view.backup_item_counts.get(bset.id, {})
    captured = by_status.get(BackupItemStatus.CAPTURED.value, 0)
    total = sum(by_status.values())
    counts = {
        "items": total,
        "items_captured": captured,
        "items_failed": total - captured,
        **redaction_counts(scope),
    }
    if captured == 0:
        decided = (RunOutcome.FAILED, "backup_no_item_captured")
    elif captured < total:
        decided = (RunOutcome.PARTIALLY_SUCCEEDED, "backup_some_items_failed")
    else:
        decided = (RunOutcome.SUCCEEDED, "backup_all_items_captured")
    return artifact_proof(found, scope, counts, decided)
