"""Baseline capture: snapshot a profile's subjects from inventory and classify the gaps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
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
from opsrecon_dagster.artifacts.proofview import ProofView, artifact_proof
from opsrecon_dagster.db.models import (
    BaselineGap,
    BaselineSnapshot,
    BaselineSnapshotItem,
    InventoryItem,
)
from opsrecon_dagster.db.run_record import RunRecord
from opsrecon_dagster.enums import GapKind, RunOutcome, SnapshotStatus
from opsrecon_dagster.operations.context import Progress
from opsrecon_dagster.providers.base import ProviderError, TenantProvider


class Subject(BaseModel):
    """One thing a baseline must contain: every item of a type, or one named item."""

    model_config = ConfigDict(extra="forbid")

    policy_type: str = Field(max_length=64)
    display_name: str | None = Field(default=None, max_length=256)

    @property
    def key(self) -> str:
        return f"{self.policy_type}:{self.display_name or '*'}"


class ProfileSubjects(BaseModel):
    """The JSON stored in ``baseline_profiles.subjects``."""

    model_config = ConfigDict(extra="forbid")

    subjects: list[Subject] = Field(default_factory=list, max_length=500)


def precondition_blocker(view: ProofView, scope: RunScope) -> str | None:
    """Why a capture cannot be done at all (``blocked``), or None."""
    blocker = readiness_blocker(scope)
    if blocker:
        return blocker
    profile = view.profile(scope)
    if profile is None or not ProfileSubjects.model_validate(profile.subjects).subjects:
        return "baseline_profile_without_subjects"
    if not view.inventory_count(scope):
        return "baseline_no_usable_inventory"
    return None


@dataclass
class _Capture:
    """What a capture found: snapshot items for matched subjects, gaps for the rest."""

    items: list[BaselineSnapshotItem]
    gaps: list[BaselineGap]

    @property
    def status(self) -> SnapshotStatus:
        if not self.items:
            return SnapshotStatus.FAILED
        return SnapshotStatus.PARTIAL if self.gaps else SnapshotStatus.COMPLETE


def capture_baseline(
    sessions: sessionmaker[Session],
    scope: RunScope,
    provider: TenantProvider,
    heartbeat: Heartbeat,
) -> None:
    """Match each subject in inventory, fetch matched items, write snapshot, items and gaps."""
    with sessions() as session:
        view, _run, _scope = ProofView.for_run(session, scope.run_id)
        if precondition_blocker(view, scope) is not None:
            return  # nothing to capture; the proof reports the blocker
        profile = view.profile(scope)
        assert profile is not None
        subjects = ProfileSubjects.model_validate(profile.subjects).subjects
        inventory = session.scalars(
            select(InventoryItem).where(
                InventoryItem.managed_environment_id == scope.environment_id
            )
        ).all()
    capture = _Capture([], [])
    for index, subject in enumerate(subjects):
        _capture_subject(capture, subject, inventory, provider, scope)
        done = {"subjects_done": index + 1}
        heartbeat(Progress(phase="capturing", counts=done | redaction_progress(provider)))
    _write_snapshot(sessions, scope, profile.id, len(subjects), capture)


def _capture_subject(
    capture: _Capture,
    subject: Subject,
    inventory: Sequence[InventoryItem],
    provider: TenantProvider,
    scope: RunScope,
) -> None:
    """Match one subject: missing or ambiguous is a gap; each match is fetched and captured
    (a fetch that fails is a ``capture_failed`` gap of that item)."""
    matches = [
        item
        for item in inventory
        if item.policy_type == subject.policy_type
        and (subject.display_name is None or item.display_name == subject.display_name)
    ]
    if not matches:
        capture.gaps.append(BaselineGap(subject_key=subject.key, kind=GapKind.MISSING.value))
        return
    if subject.display_name is not None and len(matches) > 1:
        capture.gaps.append(
            BaselineGap(
                subject_key=subject.key, kind=GapKind.AMBIGUOUS.value, candidate_count=len(matches)
            )
        )
        return
    for item in matches:
        try:
            fetched = provider.fetch_policy(scope.env_ref, item.policy_type, item.external_id)
        except ProviderError:
            capture.gaps.append(
                BaselineGap(
                    subject_key=f"{subject.key}#{item.external_id}"[:256],
                    kind=GapKind.CAPTURE_FAILED.value,
                    candidate_count=1,
                )
            )
            continue
        capture.items.append(
            BaselineSnapshotItem(
                subject_key=subject.key,
                inventory_item_id=item.id,
                content_hash=fetched.content_hash,
            )
        )


def _write_snapshot(
    sessions: sessionmaker[Session],
    scope: RunScope,
    profile_id: int,
    subject_count: int,
    capture: _Capture,
) -> None:
    """One transaction: the snapshot row, then its items and gaps."""
    with sessions.begin() as session:
        snapshot = BaselineSnapshot(
            baseline_profile_id=profile_id,
            workspace_id=scope.workspace_id,
            managed_environment_id=scope.environment_id,
            operation_run_id=scope.run_id,
            status=capture.status.value,
            subject_count=subject_count,
            captured_count=len(capture.items),
            gap_count=len(capture.gaps),
            created_at=datetime.now(UTC),
        )
        session.add(snapshot)
        session.flush()
        for snap_item in capture.items:
            snap_item.baseline_snapshot_id = snapshot.id
        for gap in capture.gaps:
            gap.baseline_snapshot_id = snapshot.id
        session.add_all([*capture.items, *capture.gaps])


def baseline_proof(view: ProofView, run: RunRecord, scope: RunScope) -> Proof:
    """Decide from the snapshot this run produced in its own scope (docs/decisions.md#baseline).

    The snapshot's item and gap rows decide, not its status field: a snapshot marked
    complete that captured nothing is not a successful capture.
    """
    found = view.own_artifact(
        BaselineSnapshot,
        run,
        scope,
        kind="baseline_snapshot",
        missing_reason="baseline_no_snapshot",
    )
    if found.early is not None:
        return found.early
    snap: BaselineSnapshot = found.row
    gap_counts = view.gap_counts.get(snap.id, {})
    captured = view.snapshot_item_counts.get(snap.id, 0)
    gaps = sum(gap_counts.values())
    counts = {
        "subjects": snap.subject_count,
        "items_captured": captured,
        "gaps": gaps,
        **{f"gaps_{kind.value}": int(gap_counts.get(kind.value, 0)) for kind in GapKind},
        **redaction_counts(scope),
    }
    if snap.subject_count == 0 or captured == 0:
        decided = (RunOutcome.FAILED, "baseline_capture_failed")
    elif gaps:
        decided = (RunOutcome.PARTIALLY_SUCCEEDED, "baseline_snapshot_with_gaps")
    else:
        decided = (RunOutcome.SUCCEEDED, "baseline_snapshot_complete")
    return artifact_proof(found, scope, counts, decided)
