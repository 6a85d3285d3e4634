"""The artifact families: for each, its asset key, operation type, job step and proof rule.

The job path every family follows is ``artifacts.execution``; the reconciler finds a
type's proof rule here (``reconciliation.registry``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts import backup, baseline, inventory, retention, review
from opsrecon_dagster.artifacts.common import Heartbeat, RunScope, readiness_blocker
from opsrecon_dagster.artifacts.proofview import ProofRule, ProofView
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.providers.base import TenantProvider

Execute = Callable[[sessionmaker[Session], RunScope, TenantProvider, Heartbeat], object]
Precondition = Callable[[ProofView, RunScope], str | None]


@dataclass(frozen=True)
class Family:
    """One artifact family: its asset key, operation type, job step and proof rule.

    ``asset_key`` and ``job`` are None for a family that is no asset of its own (retention:
    run inside the backup job's step, decided by its proof rule all the same)."""

    asset_key: str | None
    op_type: OperationType
    adapter: str
    job: str | None  # the name of the Dagster job that materializes this family
    execute: Execute
    proof: ProofRule
    # Checked by the job before any provider call and recorded on the run (blocked rule).
    precondition: Precondition


def _compose(
    sessions: sessionmaker[Session], scope: RunScope, _p: TenantProvider, hb: Heartbeat
) -> object:
    return review.compose_review(sessions, scope, hb)  # composing never calls the provider


def _inventory_precondition(_view: ProofView, scope: RunScope) -> str | None:
    return readiness_blocker(scope)


_ASSET_FAMILIES = (
    Family(
        "inventory_items",
        OperationType.INVENTORY_SYNC,
        "inventory_sync",
        "inventory_sync",
        inventory.sync_inventory,
        inventory.inventory_proof,
        _inventory_precondition,
    ),
    Family(
        "baseline_snapshots",
        OperationType.BASELINE_CAPTURE,
        "baseline_capture",
        "baseline_capture",
        baseline.capture_baseline,
        baseline.baseline_proof,
        baseline.precondition_blocker,
    ),
    Family(
        "backup_sets",
        OperationType.BACKUP_SCHEDULE_EXECUTE,
        "backup_schedule_execute",
        "backup_schedule_execute",
        backup.execute_backup,
        backup.backup_proof,
        backup.precondition_blocker,
    ),
    Family(
        "environment_reviews",
        OperationType.ENVIRONMENT_REVIEW_COMPOSE,
        "environment_review_compose",
        "environment_review_compose",
        _compose,
        review.review_proof,
        review.precondition_blocker,
    ),
)
# The four asset families, by asset key.
FAMILIES: dict[str, Family] = {f.asset_key: f for f in _ASSET_FAMILIES if f.asset_key is not None}
RETENTION = Family(
    None,
    OperationType.BACKUP_RETENTION_PRUNE,
    "backup_retention_prune",
    None,
    retention.prune_backup_sets,
    retention.retention_proof,
    retention.precondition_blocker,
)
# Every family with a proof rule, by the name the catalog's ``proven_by`` gives.
PROOF_FAMILIES: dict[str, Family] = {**FAMILIES, retention.KIND: RETENTION}
FAMILY_BY_TYPE: dict[str, Family] = {f.op_type.value: f for f in PROOF_FAMILIES.values()}
