"""Environment review composition, identified by a fingerprint of its evidence inputs."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts.common import Heartbeat, Proof, RunScope, readiness_blocker
from opsrecon_dagster.artifacts.proofview import ProofView, no_artifact_proof
from opsrecon_dagster.db.models import (
    BackupSet,
    BaselineSnapshot,
    EnvironmentReview,
    InventoryItem,
    OperationRun,
)
from opsrecon_dagster.operations.context import Progress
from opsrecon_dagster.operations.enums import ReviewStatus, RunOutcome

PROOF_STATUSES = (ReviewStatus.READY.value, ReviewStatus.PUBLISHED.value)


def precondition_blocker(view: ProofView, scope: RunScope) -> str | None:
    """Why a review cannot be composed at all (``blocked``), or None."""
    blocker = readiness_blocker(scope)
    if blocker:
        return blocker
    if not view.inventory_count(scope):
        return "review_no_inventory"
    return None


def review_inputs(session: Session, workspace_id: int, environment_id: int) -> dict[str, Any]:
    """The evidence a review is composed from: inventory state, latest snapshot and backup."""
    hashes = session.scalars(
        select(InventoryItem.content_hash)
        .where(
            InventoryItem.workspace_id == workspace_id,
            InventoryItem.managed_environment_id == environment_id,
        )
        .order_by(InventoryItem.policy_type, InventoryItem.external_id)
    ).all()
    snapshot_id = session.scalar(
        select(func.max(BaselineSnapshot.id)).where(
            BaselineSnapshot.managed_environment_id == environment_id
        )
    )
    backup_set_id = session.scalar(
        select(func.max(BackupSet.id)).where(BackupSet.managed_environment_id == environment_id)
    )
    return {
        "inventory_item_count": len(hashes),
        "inventory_digest": hashlib.sha256("".join(hashes).encode()).hexdigest(),
        "baseline_snapshot_id": snapshot_id,
        "backup_set_id": backup_set_id,
    }


def fingerprint_of(inputs: dict[str, Any]) -> str:
    """Hash of a review's inputs: the same evidence always gives the same fingerprint."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def current_fingerprint(session: Session, workspace_id: int, environment_id: int) -> str:
    return fingerprint_of(review_inputs(session, workspace_id, environment_id))


def _mutable_review(
    session: Session, scope: RunScope, fingerprint: str
) -> EnvironmentReview | None:
    return session.scalars(
        select(EnvironmentReview)
        .where(
            EnvironmentReview.workspace_id == scope.workspace_id,
            EnvironmentReview.managed_environment_id == scope.environment_id,
            EnvironmentReview.fingerprint == fingerprint,
            EnvironmentReview.status.in_([s.value for s in ReviewStatus.mutable()]),
        )
        .order_by(EnvironmentReview.id)
    ).first()


def compose_review(
    sessions: sessionmaker[Session],
    scope: RunScope,
    heartbeat: Heartbeat,
) -> tuple[int, bool]:
    """Compose the review for the run's fingerprint; returns (review id, adopted existing).

    A same-fingerprint mutable review is adopted instead of composing a second one: checked
    before composing, and again after a unique-index violation when a concurrent compose won.
    """
    fingerprint = scope.context.inputs.fingerprint
    if fingerprint is None:
        raise ValueError("a review compose run needs a fingerprint in its inputs")
    with sessions() as session:
        existing = _mutable_review(session, scope, fingerprint)
        if existing is not None and existing.status != ReviewStatus.FAILED.value:
            return existing.id, True
        summary = review_inputs(session, scope.workspace_id, scope.environment_id)
    heartbeat(Progress(phase="composing", counts={"inputs": len(summary)}))
    now = datetime.now(UTC)
    try:
        with sessions.begin() as session:
            if existing is not None:  # a failed mutable review is replaced by this compose
                stale = session.get(EnvironmentReview, existing.id)
                if stale is not None:
                    stale.status = ReviewStatus.SUPERSEDED.value
                    stale.updated_at = now
                    session.flush()
            review = EnvironmentReview(
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                fingerprint=fingerprint,
                status=ReviewStatus.READY.value,
                operation_run_id=scope.run_id,
                summary=summary,
                created_at=now,
                updated_at=now,
            )
            session.add(review)
            session.flush()
            return review.id, False
    except IntegrityError:
        with sessions() as session:
            winner = _mutable_review(session, scope, fingerprint)
        if winner is None:
            raise
        return winner.id, True


def review_proof(view: ProofView, run: OperationRun, scope: RunScope) -> Proof:
    """Decide from same-scope reviews with the run's fingerprint (docs/decisions.md#review)."""
    fingerprint = scope.context.inputs.fingerprint
    _own, wrong_scope = view.own_rows(EnvironmentReview, run, scope)
    base: dict[str, Any] = {
        "artifact_kind": "environment_review",
        "fingerprint_prefix": fingerprint[:12] if fingerprint else None,
        "rejected_wrong_scope": wrong_scope,
    }
    if fingerprint is None:
        return Proof(RunOutcome.FAILED, "review_fingerprint_missing", scope.base_evidence(**base))
    rows = view.same_fingerprint_reviews(scope, fingerprint)
    own_failed = [r for r in rows if r.operation_run_id == run.id and r.status == "failed"]
    candidates = [r for r in rows if r.status in PROOF_STATUSES]
    evidence = scope.base_evidence(
        **base,
        considered_ids=sorted(r.id for r in rows)[:20],
        considered_total=len(rows),
        artifact_ids=sorted(r.id for r in candidates)[:20],
        artifact_statuses=sorted({r.status for r in candidates}),
    )
    counts = {"candidates": len(candidates)}
    # Composed by this run only if it carries the run's id and does not predate the run;
    # anything older with the same fingerprint is reuse.
    produced = [
        r for r in candidates if r.operation_run_id == run.id and r.created_at >= run.created_at
    ]
    if len(produced) == 1:
        return Proof(RunOutcome.SUCCEEDED, "review_composed", evidence, counts, produced[0].id)
    if len(candidates) == 1 and not produced:
        return Proof(RunOutcome.SUCCEEDED, "review_reused", evidence, counts, candidates[0].id)
    if len(candidates) > 1:
        return Proof(RunOutcome.FAILED, "proof_ambiguous", evidence, counts)
    if own_failed:
        return Proof(RunOutcome.FAILED, "review_compose_failed", evidence, counts)
    missing = no_artifact_proof(scope, "review_not_found", base)
    return Proof(missing.outcome, missing.reason_code, evidence, counts)
