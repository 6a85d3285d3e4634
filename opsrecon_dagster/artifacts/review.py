"""Environment review composition, identified by a fingerprint of its evidence inputs.

The fingerprint is the hash of the inputs actually read at compose time (``ReviewSummary``);
the run's requested fingerprint is kept beside it when the inputs drifted in between. The
review's status changes go through ``review_lifecycle`` (docs/decisions.md#review).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts.common import Heartbeat, Proof, RunScope, readiness_blocker
from opsrecon_dagster.artifacts.proofview import ProofView, no_artifact_proof
from opsrecon_dagster.artifacts.review_lifecycle import (
    REUSABLE,
    event,
    transition,
    was_composed,
)
from opsrecon_dagster.db.models import (
    BackupSet,
    BaselineSnapshot,
    EnvironmentReview,
    InventoryItem,
)
from opsrecon_dagster.db.run_record import RunRecord
from opsrecon_dagster.enums import Actor, ReviewStatus, RunOutcome
from opsrecon_dagster.operations.context import Evidence, Progress

REUSABLE_STATUSES = tuple(s.value for s in REUSABLE)


class ReviewSummary(BaseModel):
    """The evidence a review is composed from, as stored in ``environment_reviews.summary``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inventory_item_count: int
    inventory_digest: str
    baseline_snapshot_id: int | None
    backup_set_id: int | None

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.model_dump())


def precondition_blocker(view: ProofView, scope: RunScope) -> str | None:
    """Why a review cannot be composed at all (``blocked``), or None."""
    blocker = readiness_blocker(scope)
    if blocker:
        return blocker
    if not view.inventory_count(scope):
        return "review_no_inventory"
    return None


def review_inputs(session: Session, workspace_id: int, environment_id: int) -> ReviewSummary:
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
    return ReviewSummary(
        inventory_item_count=len(hashes),
        inventory_digest=hashlib.sha256("".join(hashes).encode()).hexdigest(),
        baseline_snapshot_id=snapshot_id,
        backup_set_id=backup_set_id,
    )


def fingerprint_of(inputs: Mapping[str, Any]) -> str:
    """Hash of a review's inputs: the same evidence always gives the same fingerprint."""
    return hashlib.sha256(json.dumps(dict(inputs), sort_keys=True).encode()).hexdigest()


def summary_matches(review: EnvironmentReview) -> bool:
    """Whether the stored fingerprint is the hash of the stored summary."""
    try:
        summary = ReviewSummary.model_validate(review.summary)
    except ValidationError:
        return False
    return summary.fingerprint == review.fingerprint


def current_fingerprint(session: Session, workspace_id: int, environment_id: int) -> str:
    """The fingerprint a review composed now would have (a run records it when started)."""
    return review_inputs(session, workspace_id, environment_id).fingerprint


def _same_fingerprint(
    session: Session, scope: RunScope, fingerprint: str
) -> list[EnvironmentReview]:
    """Mutable or reusable reviews with this fingerprint in the run's scope, oldest first."""
    statuses = {s.value for s in (*ReviewStatus.mutable(), *REUSABLE)}
    return list(
        session.scalars(
            select(EnvironmentReview)
            .where(
                EnvironmentReview.workspace_id == scope.workspace_id,
                EnvironmentReview.managed_environment_id == scope.environment_id,
                EnvironmentReview.fingerprint == fingerprint,
                EnvironmentReview.status.in_(statuses),
            )
            .order_by(EnvironmentReview.id)
        )
    )


def _reusable(rows: list[EnvironmentReview]) -> EnvironmentReview | None:
    return next((r for r in rows if r.status in REUSABLE_STATUSES), None)


def compose_review(
    sessions: sessionmaker[Session],
    scope: RunScope,
    heartbeat: Heartbeat,
) -> tuple[int, bool]:
    """Compose the review of the environment's current inputs; returns (id, adopted).

    A same-fingerprint ``ready`` or ``published`` review is adopted instead of composing a
    second one: checked before composing, and again after a unique-index violation when a
    concurrent compose won. A same-fingerprint ``draft`` or ``failed`` review is superseded
    by the new one, so neither can block composing.
    """
    requested = scope.context.inputs.fingerprint
    if requested is None:
        raise ValueError("a review compose run needs a fingerprint in its inputs")
    with sessions() as session:
        summary = review_inputs(session, scope.workspace_id, scope.environment_id)
        fingerprint = summary.fingerprint
        adopted = _reusable(_same_fingerprint(session, scope, fingerprint))
        if adopted is not None:
            return adopted.id, True
    heartbeat(Progress(phase="composing", counts={"inputs": len(ReviewSummary.model_fields)}))
    try:
        return _insert_ready(sessions, scope, summary, requested), False
    except IntegrityError:
        with sessions() as session:
            winner = _reusable(_same_fingerprint(session, scope, fingerprint))
        if winner is None:
            raise
        return winner.id, True


def _insert_ready(
    sessions: sessionmaker[Session], scope: RunScope, summary: ReviewSummary, requested: str
) -> int:
    """One transaction: supersede same-fingerprint draft/failed reviews, insert a ready one."""
    now = datetime.now(UTC)
    fingerprint = summary.fingerprint
    with sessions.begin() as session:
        replaced = [
            r for r in _same_fingerprint(session, scope, fingerprint) if r.status not in REUSABLE
        ]
        for old in replaced:
            transition(
                session,
                old,
                ReviewStatus.SUPERSEDED,
                action="superseded",
                actor=Actor.JOB,
                now=now,
                operation_run_id=scope.run_id,
            )
        session.flush()  # free the mutable-fingerprint slot before the insert
        review = EnvironmentReview(
            workspace_id=scope.workspace_id,
            managed_environment_id=scope.environment_id,
            fingerprint=fingerprint,
            requested_fingerprint=requested if requested != fingerprint else None,
            status=ReviewStatus.READY.value,
            operation_run_id=scope.run_id,
            summary=summary.model_dump(),
            composed_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(review)
        session.flush()
        details = {"fingerprint_drift": requested != fingerprint}
        session.add(
            event(
                review, "composed", Actor.JOB, None, ReviewStatus.READY, now, scope.run_id, details
            )
        )
        for old in replaced:
            old.superseded_by_id = review.id
        return review.id


def review_proof(view: ProofView, run: RunRecord, scope: RunScope) -> Proof:
    """Decide from same-scope reviews (docs/decisions.md#review).

    The run's own composed review proves it whatever its status now (published, superseded
    or archived later), if its stored fingerprint is the hash of its summary. Otherwise one
    reusable review with the run's requested fingerprint is reuse.
    """
    fingerprint = scope.context.inputs.fingerprint
    own, wrong_scope = view.own_rows(EnvironmentReview, run, scope)
    base: dict[str, Any] = {
        "artifact_kind": "environment_review",
        "fingerprint_prefix": fingerprint[:12] if fingerprint else None,
        "rejected_wrong_scope": wrong_scope,
    }
    if fingerprint is None:
        return Proof(RunOutcome.FAILED, "review_fingerprint_missing", scope.base_evidence(**base))
    composed = [r for r in own if was_composed(r)]
    own_ids = {r.id for r in own}
    reusable = [
        r
        for r in view.same_fingerprint_reviews(scope, fingerprint)
        if r.status in REUSABLE_STATUSES and r.id not in own_ids
    ]
    considered = sorted({r.id for r in own} | {r.id for r in reusable})
    ids, total = Evidence.capped_ids(considered)
    candidates = composed or reusable
    # fingerprint_drift: 1 when the run's own review was composed from inputs that changed
    # after the run started (its fingerprint is then not the requested one).
    drift = int(any(r.fingerprint != fingerprint for r in composed))
    counts = {"candidates": len(candidates), "fingerprint_drift": drift}
    evidence = scope.base_evidence(
        **base,
        considered_ids=ids,
        considered_total=total,
        artifact_ids=sorted(r.id for r in candidates)[:20],
        artifact_statuses=sorted({r.status for r in candidates}),
        counts=counts,
    )
    outcome, reason, artifact_id = _review_verdict(scope, base, own, composed, reusable)
    return Proof(outcome, reason, evidence, counts, artifact_id)


def _review_verdict(
    scope: RunScope,
    base: Mapping[str, Any],
    own: list[EnvironmentReview],
    composed: list[EnvironmentReview],
    reusable: list[EnvironmentReview],
) -> tuple[RunOutcome | None, str, int | None]:
    """The outcome and reason code the candidate reviews give, and the proving review."""
    if len(composed or reusable) > 1:
        return RunOutcome.FAILED, "proof_ambiguous", None
    if composed:
        if not summary_matches(composed[0]):
            return RunOutcome.FAILED, "review_fingerprint_mismatch", None
        return RunOutcome.SUCCEEDED, "review_composed", composed[0].id
    if reusable:
        return RunOutcome.SUCCEEDED, "review_reused", reusable[0].id
    if any(r.status == ReviewStatus.FAILED.value for r in own):
        return RunOutcome.FAILED, "review_compose_failed", None
    missing = no_artifact_proof(scope, "review_not_found", base)
    return missing.outcome, missing.reason_code, None
