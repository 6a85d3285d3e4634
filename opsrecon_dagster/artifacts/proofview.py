"""Batch-loaded, read-only rows that the proof rules read, for a set of runs.

The reconciler decides a batch of runs with a fixed number of queries (about ten, whatever
the batch size); the job path loads a view for its one run and applies the same rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsrecon_dagster.artifacts.common import OwnArtifact, Proof, RunScope, run_blocker, scope_of
from opsrecon_dagster.db.models import (
    BackupItem,
    BackupSchedule,
    BackupSet,
    BaselineGap,
    BaselineProfile,
    BaselineSnapshot,
    BaselineSnapshotItem,
    EnvironmentReview,
    InventoryCoverage,
    InventoryItem,
    ManagedEnvironment,
    OperationRun,
    Workspace,
)
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Evidence


def _fingerprint(run: OperationRun) -> str | None:
    fp = (run.context or {}).get("inputs", {}).get("fingerprint")
    return fp if isinstance(fp, str) else None


RETENTION_TYPE = OperationType.BACKUP_RETENTION_PRUNE.value


@dataclass
class ProofView:
    """Everything the four proof rules need for ``runs``, loaded in batched queries."""

    workspaces: dict[int, Workspace]
    environments: dict[int, ManagedEnvironment]
    tagged: dict[type, dict[int, list[Any]]]  # model -> run id -> rows carrying that run id
    gap_counts: dict[int, dict[str, int]]  # snapshot id -> gap kind -> count
    snapshot_item_counts: dict[int, int]  # snapshot id -> captured items (rows, not a field)
    backup_item_counts: dict[int, dict[str, int]]  # backup set id -> item status -> count
    profiles: dict[int, list[BaselineProfile]]  # environment id -> profiles (by id)
    schedules: dict[int, list[BackupSchedule]]  # environment id -> schedules (by id)
    inventory_counts: dict[int, int]  # environment id -> inventory items
    reviews: dict[tuple[int, str], list[EnvironmentReview]]  # (environment, fingerprint)
    # environment id -> backup sets, for the environments of retention runs only
    backup_sets: dict[int, list[BackupSet]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, runs: Sequence[OperationRun]) -> ProofView:
        """Load the rows for all ``runs`` at once."""
        run_ids = [r.id for r in runs]
        env_ids = {r.managed_environment_id for r in runs if r.managed_environment_id}
        ws_ids = {r.workspace_id for r in runs}
        fingerprints = {fp for r in runs if (fp := _fingerprint(r))}

        def by_run(model: Any) -> dict[int, list[Any]]:
            grouped: dict[int, list[Any]] = defaultdict(list)
            if run_ids:
                for row in session.scalars(
                    select(model).where(model.operation_run_id.in_(run_ids)).order_by(model.id)
                ):
                    grouped[row.operation_run_id].append(row)
            return grouped

        tagged: dict[type, dict[int, list[Any]]] = {
            model: by_run(model)
            for model in (InventoryCoverage, BaselineSnapshot, BackupSet, EnvironmentReview)
        }
        snapshot_ids = [s.id for rows in tagged[BaselineSnapshot].values() for s in rows]
        set_ids = [b.id for rows in tagged[BackupSet].values() for b in rows]
        gap_counts = _grouped_counts(
            session, BaselineGap.baseline_snapshot_id, BaselineGap.kind, snapshot_ids
        )
        backup_item_counts = _grouped_counts(
            session, BackupItem.backup_set_id, BackupItem.status, set_ids
        )
        snapshot_item_counts: dict[int, int] = {}
        if snapshot_ids:
            snapshot_item_counts = {
                snap_id: int(n)
                for snap_id, n in session.execute(
                    select(BaselineSnapshotItem.baseline_snapshot_id, func.count())
                    .where(BaselineSnapshotItem.baseline_snapshot_id.in_(snapshot_ids))
                    .group_by(BaselineSnapshotItem.baseline_snapshot_id)
                )
            }

        def per_env(model: Any) -> dict[int, list[Any]]:
            grouped: dict[int, list[Any]] = defaultdict(list)
            if env_ids:
                for row in session.scalars(
                    select(model)
                    .where(model.managed_environment_id.in_(env_ids))
                    .order_by(model.id)
                ):
                    grouped[row.managed_environment_id].append(row)
            return grouped

        reviews: dict[tuple[int, str], list[EnvironmentReview]] = defaultdict(list)
        if env_ids and fingerprints:
            for review in session.scalars(
                select(EnvironmentReview).where(
                    EnvironmentReview.managed_environment_id.in_(env_ids),
                    EnvironmentReview.fingerprint.in_(fingerprints),
                )
            ):
                reviews[(review.managed_environment_id, review.fingerprint)].append(review)
        counts: dict[int, int] = {}
        if env_ids:
            counts = {
                env_id: int(n)
                for env_id, n in session.execute(
                    select(InventoryItem.managed_environment_id, func.count())
                    .where(InventoryItem.managed_environment_id.in_(env_ids))
                    .group_by(InventoryItem.managed_environment_id)
                )
            }
        retention_envs = {
            r.managed_environment_id
            for r in runs
            if r.type == RETENTION_TYPE and r.managed_environment_id is not None
        }
        backup_sets: dict[int, list[BackupSet]] = defaultdict(list)
        if retention_envs:
            for row in session.scalars(
                select(BackupSet).where(BackupSet.managed_environment_id.in_(retention_envs))
            ):
                backup_sets[row.managed_environment_id].append(row)
        return cls(
            workspaces={
                w.id: w for w in session.scalars(select(Workspace).where(Workspace.id.in_(ws_ids)))
            },
            environments={
                e.id: e
                for e in session.scalars(
                    select(ManagedEnvironment).where(ManagedEnvironment.id.in_(env_ids))
                )
            }
            if env_ids
            else {},
            tagged=tagged,
            gap_counts=gap_counts,
            snapshot_item_counts=snapshot_item_counts,
            backup_item_counts=backup_item_counts,
            profiles=per_env(BaselineProfile),
            schedules=per_env(BackupSchedule),
            inventory_counts=counts,
            reviews=reviews,
            backup_sets=backup_sets,
        )

    @classmethod
    def for_run(cls, session: Session, run_id: int) -> tuple[ProofView, OperationRun, RunScope]:
        """A view of one run (the job path), with the run and its scope."""
        run = session.get(OperationRun, run_id)
        if run is None:
            raise LookupError(f"operation run {run_id} not found")
        view = cls.load(session, [run])
        return view, run, view.scope(run)

    # ------------------------------------------------------------------ lookups
    def scope(self, run: OperationRun) -> RunScope:
        """The run's own scope; ``ValueError`` when missing or inconsistent."""
        env = self.environments.get(run.managed_environment_id or -1)
        return scope_of(run, self.workspaces.get(run.workspace_id), env)

    def tagged_rows(self, model: type, run: OperationRun) -> list[Any]:
        """Rows of ``model`` that carry the run's id, whatever their scope."""
        return self.tagged[model].get(run.id, [])

    def own_rows(self, model: type, run: OperationRun, scope: RunScope) -> tuple[list[Any], int]:
        """Rows the run produced in its own scope, not before it; plus the wrong-scope count."""
        rows = self.tagged_rows(model, run)
        mine = [r for r in rows if _in_scope(r, scope)]
        fresh = [r for r in mine if _created(r) >= run.created_at]
        return fresh, len(rows) - len(mine)

    def profile(self, scope: RunScope) -> BaselineProfile | None:
        """The profile the run asked for, else the environment's first active one."""
        wanted = scope.context.inputs.baseline_profile_id
        for profile in self.profiles.get(scope.environment_id, []):
            if profile.workspace_id != scope.workspace_id:
                continue
            if (wanted and profile.id == wanted) or (not wanted and profile.active):
                return profile
        return None

    def schedule(self, scope: RunScope) -> BackupSchedule | None:
        """The schedule the run names, else the environment's first schedule."""
        wanted = scope.context.inputs.backup_schedule_id
        for schedule in self.schedules.get(scope.environment_id, []):
            if schedule.workspace_id == scope.workspace_id and (
                not wanted or schedule.id == wanted
            ):
                return schedule
        return None

    def retention_sets(self, scope: RunScope, schedule_id: int) -> list[BackupSet]:
        """The backup sets of one schedule in the run's scope (retention runs only)."""
        return [
            s
            for s in self.backup_sets.get(scope.environment_id, [])
            if s.backup_schedule_id == schedule_id and _in_scope(s, scope)
        ]

    def inventory_count(self, scope: RunScope) -> int:
        return self.inventory_counts.get(scope.environment_id, 0)

    def same_fingerprint_reviews(self, scope: RunScope, fp: str) -> list[EnvironmentReview]:
        return [
            r
            for r in self.reviews.get((scope.environment_id, fp), [])
            if r.workspace_id == scope.workspace_id
        ]

    # ------------------------------------------------------------------ shared rule
    def own_artifact(
        self,
        model: type,
        run: OperationRun,
        scope: RunScope,
        *,
        kind: str,
        missing_reason: str,
    ) -> OwnArtifact:
        """The one artifact this run produced in its scope, or the proof that stands instead.

        None found: ``blocked`` when the shared blocked rule says so, else no proof yet.
        Several found: fail closed, whatever they say.
        """
        rows, wrong_scope = self.own_rows(model, run, scope)
        base: dict[str, Any] = {"artifact_kind": kind, "rejected_wrong_scope": wrong_scope}
        if not rows:
            return OwnArtifact(None, no_artifact_proof(scope, missing_reason, base), base)
        if len(rows) > 1:
            ids, total = Evidence.capped_ids([r.id for r in rows])
            evidence = scope.base_evidence(**base, considered_ids=ids, considered_total=total)
            return OwnArtifact(None, Proof(RunOutcome.FAILED, "proof_ambiguous", evidence), base)
        return OwnArtifact(rows[0], None, base)


def no_artifact_proof(scope: RunScope, missing_reason: str, base: Mapping[str, Any]) -> Proof:
    """What stands when a run left no artifact: blocked by the shared rule, else no proof."""
    evidence = scope.base_evidence(**base)
    reason = run_blocker(scope)
    if reason is not None:
        return Proof(RunOutcome.BLOCKED, reason, evidence)
    return Proof(None, missing_reason, evidence)


def artifact_proof(
    found: OwnArtifact,
    scope: RunScope,
    counts: dict[str, int],
    decided: tuple[RunOutcome, str],
) -> Proof:
    """Proof from one artifact, with the outcome its counts support."""
    row = found.row
    evidence = scope.base_evidence(
        **found.base,
        artifact_ids=[row.id],
        artifact_statuses=[row.status],
        counts=counts,
        artifact_created_at=row.created_at,
    )
    outcome, reason = decided
    return Proof(outcome, reason, evidence, counts, row.id)


def _grouped_counts(
    session: Session, parent: Any, status: Any, parent_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """parent id -> status -> row count, in one grouped query."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if parent_ids:
        for parent_id, value, n in session.execute(
            select(parent, status, func.count())
            .where(parent.in_(list(parent_ids)))
            .group_by(parent, status)
        ):
            counts[parent_id][value] = int(n)
    return counts


def _in_scope(row: Any, scope: RunScope) -> bool:
    return bool(
        row.workspace_id == scope.workspace_id
        and row.managed_environment_id == scope.environment_id
    )


def _created(row: Any) -> Any:
    return row.recorded_at if isinstance(row, InventoryCoverage) else row.created_at


ProofRule = Callable[[ProofView, OperationRun, RunScope], Proof]
