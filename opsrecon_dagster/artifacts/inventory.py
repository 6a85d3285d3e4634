"""Inventory sync: list the environment's policies per type, upsert items, record coverage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts.common import (
    Heartbeat,
    Proof,
    RunScope,
    readiness_blocker,
    redaction_counts,
    redaction_progress,
)
from opsrecon_dagster.artifacts.proofview import ProofView, no_artifact_proof
from opsrecon_dagster.db.models import InventoryCoverage, InventoryItem
from opsrecon_dagster.db.run_record import RunRecord
from opsrecon_dagster.enums import CoverageStatus, RunOutcome
from opsrecon_dagster.operations.context import Progress
from opsrecon_dagster.providers.base import (
    PolicyObject,
    ProviderError,
    ProviderErrorKind,
    TenantProvider,
)

PRECONDITION_REASONS = {
    "provider_consent_missing",
    "provider_permission_missing",
    "environment_consent_missing",
    "environment_permission_missing",
    "environment_disabled",
}
DEFAULT_POLICY_TYPES = ("deviceConfigurations", "compliancePolicies", "appProtectionPolicies")
# Failures that hold for the whole environment: the types after one are not attempted.
ABORTS_SYNC = {ProviderErrorKind.CONSENT_MISSING}


def requested_types(scope: RunScope) -> list[str]:
    return list(scope.context.inputs.policy_types) or list(DEFAULT_POLICY_TYPES)


def sync_inventory(
    sessions: sessionmaker[Session],
    scope: RunScope,
    provider: TenantProvider,
    heartbeat: Heartbeat,
) -> None:
    """Read every requested type from the provider, then write items and coverage at once.

    Coverage per type: ``succeeded``, ``failed`` (attempted, with the provider's reason) or
    ``skipped`` (not attempted, with the reason that stopped the sync: a readiness blocker,
    or a failure such as missing consent that holds for every type after it).

    The write is one transaction at the end: a worker that dies mid-sync leaves no coverage,
    so nothing can later be mistaken for proof.
    """
    types = requested_types(scope)
    listing = _list_types(scope, provider, heartbeat, types)
    _write_inventory(sessions, scope, types, listing)


@dataclass
class _Listing:
    """What reading the types found: objects of listed types, reasons of the others."""

    listed: dict[str, list[PolicyObject]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _list_types(
    scope: RunScope, provider: TenantProvider, heartbeat: Heartbeat, types: Sequence[str]
) -> _Listing:
    """List each type in turn (nothing written yet); once a blocker holds for the whole
    environment, the types after it are skipped with its reason."""
    listing = _Listing()
    stopped_by = readiness_blocker(scope)
    for index, policy_type in enumerate(types):
        if stopped_by is not None:
            listing.skipped[policy_type] = stopped_by
            continue
        try:
            listing.listed[policy_type] = list(provider.list_policies(scope.env_ref, policy_type))
        except ProviderError as err:
            listing.failures[policy_type] = err.reason_code
            if err.kind in ABORTS_SYNC:
                stopped_by = err.reason_code
        done = {"types_done": index + 1, "types_total": len(types)}
        heartbeat(Progress(phase="listing", counts=done | redaction_progress(provider)))
    return listing


def _write_inventory(
    sessions: sessionmaker[Session], scope: RunScope, types: Sequence[str], listing: _Listing
) -> None:
    """One transaction: upsert the listed items, then one coverage row per requested type."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        _upsert_items(session, scope, [o for objs in listing.listed.values() for o in objs], now)
        for policy_type in types:
            status, reason = _coverage(policy_type, listing)
            session.add(
                InventoryCoverage(
                    operation_run_id=scope.run_id,
                    workspace_id=scope.workspace_id,
                    managed_environment_id=scope.environment_id,
                    policy_type=policy_type,
                    status=status.value,
                    reason_code=reason,
                    item_count=len(listing.listed.get(policy_type, [])),
                    recorded_at=now,
                )
            )


def _coverage(policy_type: str, listing: _Listing) -> tuple[CoverageStatus, str | None]:
    """One requested type's coverage status and reason code."""
    if policy_type in listing.listed:
        return CoverageStatus.SUCCEEDED, None
    if policy_type in listing.skipped:
        return CoverageStatus.SKIPPED, listing.skipped[policy_type]
    return CoverageStatus.FAILED, listing.failures.get(policy_type)


def _upsert_items(
    session: Session, scope: RunScope, objects: Sequence[PolicyObject], now: datetime
) -> None:
    if not objects:
        return
    existing = {
        (item.policy_type, item.external_id): item
        for item in session.scalars(
            select(InventoryItem).where(
                InventoryItem.managed_environment_id == scope.environment_id,
                InventoryItem.policy_type.in_({o.policy_type for o in objects}),
            )
        )
    }
    for obj in objects:
        item = existing.get((obj.policy_type, obj.external_id))
        if item is None:
            item = InventoryItem(
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                policy_type=obj.policy_type,
                external_id=obj.external_id,
                first_seen_at=now,
            )
            session.add(item)
            existing[(obj.policy_type, obj.external_id)] = item
        item.display_name = obj.display_name
        item.content_hash = obj.content_hash
        item.last_seen_at = now
        item.last_seen_operation_run_id = scope.run_id


def inventory_proof(view: ProofView, run: RunRecord, scope: RunScope) -> Proof:
    """Decide from the coverage rows this run recorded in its own scope
    (docs/decisions.md#inventory).

    Only the requested types count; coverage of a type nobody asked for is ignored (and
    counted in the evidence). Skipped types (not attempted) are counted apart from failed
    ones and decide like them: they keep a run from ``succeeded``, and with no type covered
    the run is ``blocked`` only if every reason, failed or skipped, is an access problem.
    No coverage at all: the shared blocked rule, else no proof.
    """
    rows, wrong_scope = view.own_rows(InventoryCoverage, run, scope)
    coverage = _CoverageByStatus.of(rows, requested_types(scope))
    counts = coverage.counts() | redaction_counts(scope)
    base: dict[str, object] = {
        "artifact_kind": "inventory_coverage",
        "rejected_wrong_scope": wrong_scope,
    }
    if not coverage.by_type:
        proof = no_artifact_proof(scope, "inventory_no_coverage", base)
        return Proof(
            proof.outcome,
            proof.reason_code,
            proof.evidence.model_copy(update={"counts": counts}),
            counts,
        )
    evidence = scope.base_evidence(
        **base,
        artifact_ids=sorted(r.id for r in coverage.by_type.values())[:20],
        counts=counts,
    )
    outcome, reason = coverage.decide()
    return Proof(outcome, reason, evidence, counts)


@dataclass(frozen=True)
class _CoverageByStatus:
    """A run's coverage rows of the requested types, sorted by what they say."""

    requested: list[str]
    by_type: dict[str, InventoryCoverage]
    succeeded: list[str]
    failed: dict[str, str]
    skipped: dict[str, str]
    missing: list[str]
    unrequested: int

    @classmethod
    def of(cls, rows: Sequence[InventoryCoverage], requested: list[str]) -> _CoverageByStatus:
        by_type = {row.policy_type: row for row in rows if row.policy_type in requested}
        succeeded = [t for t, r in by_type.items() if r.status == CoverageStatus.SUCCEEDED.value]
        skipped = {
            t: r.reason_code or "unknown"
            for t, r in by_type.items()
            if r.status == CoverageStatus.SKIPPED.value
        }
        # Any other status counts as failed (fail closed).
        failed = {
            t: r.reason_code or "unknown"
            for t, r in by_type.items()
            if t not in succeeded and t not in skipped
        }
        missing = [t for t in requested if t not in by_type]
        unrequested = len({r.policy_type for r in rows} - set(requested))
        return cls(requested, by_type, succeeded, failed, skipped, missing, unrequested)

    def counts(self) -> dict[str, int]:
        return {
            "types_requested": len(self.requested),
            "types_succeeded": len(self.succeeded),
            "types_failed": len(self.failed),
            "types_skipped": len(self.skipped),
            "types_missing": len(self.missing),
            "types_unrequested": self.unrequested,
            "items_seen": sum(r.item_count for r in self.by_type.values()),
        }

    def decide(self) -> tuple[RunOutcome, str]:
        """The outcome and reason code of coverage that exists for some requested type."""
        if not self.failed and not self.skipped and not self.missing:
            return RunOutcome.SUCCEEDED, "inventory_all_types_covered"
        if self.succeeded:
            return RunOutcome.PARTIALLY_SUCCEEDED, "inventory_partial_coverage"
        reasons = [*self.failed.values(), *self.skipped.values()]
        if not self.missing and all(reason in PRECONDITION_REASONS for reason in reasons):
            return RunOutcome.BLOCKED, "inventory_access_missing"
        return RunOutcome.FAILED, "inventory_no_type_covered"
