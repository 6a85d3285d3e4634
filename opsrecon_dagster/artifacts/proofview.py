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

from opsrecon_dagster.artifacts.common import (
    EnvironmentFields,
    OwnArtifact,
    Proof,
    RunScope,
    WorkspaceFields,
    run_blocker,
    scope_of,
)
from opsrecon_dagster.db.bulk import one_of
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
from opsrecon_dagster.db.run_record import RunRecord
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Evidence, RunContext


def _fingerprint(run: RunRecord) -> str | None:
    fp = (run.context or {}).get("inputs", {}).get("fingerprint")
    return fp if isinstance(fp, str) else None


RETENTION_TYPE = OperationType.BACKUP_RETENTION_PRUNE.value


@dataclass
class ProofView:
    """Everything the four proof rules need for ``runs``, loaded in batched queries."""

    workspaces: dict[int, WorkspaceFields]
    environments: dict[int, EnvironmentFields]
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
    def load(cls, session: Session, runs: Sequence[RunRecord]) -> ProofView:
        """Load the rows for all ``runs`` at once (a fixed number of queries)."""
        run_ids = [r.id for r in runs]
        env_ids = sorted({r.managed_environment_id for r in runs if r.managed_environment_id})
        tagged: dict[type, dict[int, list[Any]]] = {
            model: _grouped_rows(session, model.operation_run_id, run_ids)
            for model in (InventoryCoverage, BaselineSnapshot, BackupSet, EnvironmentReview)
        }
        snapshot_ids = [s.id for rows in tagged[BaselineSnapshot].values() for s in rows]
        set_ids = [b.id for rows in tagged[BackupSet].values() for b in rows]
        retention_envs = sorted(
            {e for r in runs if r.type == RETENTION_TYPE and (e := r.managed_environment_id)}
        )
        return cls(
            workspaces=_scope_rows(
                session, (Workspace.id, Workspace.slug), {r.workspace_id for r in runs}
            ),
            environments=_scope_rows(session, _ENVIRONMENT_FIELDS, set(env_ids)),
            tagged=tagged,
            gap_counts=_grouped_counts(
                session, BaselineGap.baseline_snapshot_id, BaselineGap.kind, snapshot_ids
            ),
            snapshot_item_counts=_counts(
                session, BaselineSnapshotItem.baseline_snapshot_id, snapshot_ids
            ),
            backup_item_counts=_grouped_counts(
                session, BackupItem.backup_set_id, BackupItem.status, set_ids
            ),
            profiles=_grouped_rows(session, BaselineProfile.managed_environment_id, env_ids),
            schedules=_grouped_rows(session, BackupSchedule.managed_environment_id, env_ids),
            inventory_counts=_counts(session, InventoryItem.managed_environment_id, env_ids),
            reviews=_same_fingerprint_reviews(
                session, env_ids, {fp for r in runs if (fp := _fingerprint(r))}
            ),
            backup_sets=_grouped_rows(session, BackupSet.managed_environment_id, retention_envs),
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
    def scope(self, run: RunRecord, context: RunContext | None = None) -> RunScope:
        """The run's own scope; ``ValueError`` when missing or inconsistent. ``context``:
        the run's stored context as the caller already validated it."""
        env = self.environments.get(run.managed_environment_id or -1)
        return scope_of(run, self.workspaces.get(run.workspace_id), env, context)

    def tagged_rows(self, model: type, run: RunRecord) -> list[Any]:
        """Rows of ``model`` that carry the run's id, whatever their scope."""
        return self.tagged[model].get(run.id, [])

    def own_rows(self, model: type, run: RunRecord, scope: RunScope) -> tuple[list[Any], int]:
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
        run: RunRecord,
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


def _grouped_rows(session: Session, column: Any, ids: Sequence[int]) -> dict[int, list[Any]]:
    """Rows of ``column``'s table whose ``column`` is in ``ids``, grouped by it, id order."""
    grouped: dict[int, list[Any]] = defaultdict(list)
    if ids:
        model = column.class_
        for row in session.scalars(
            select(model).where(one_of(session, column, ids)).order_by(model.id)
        ):
            grouped[getattr(row, column.key)].append(row)
    return grouped


# The columns ``scope_of`` reads (rows of values: a batch's 1,000 environments need no ORM
# objects).
_ENVIRONMENT_FIELDS = (
    ManagedEnvironment.id,
    ManagedEnvironment.workspace_id,
    ManagedEnvironment.slug,
    ManagedEnvironment.partition_key,
    ManagedEnvironment.readiness,
    ManagedEnvironment.readiness_changed_at,
)


def _scope_rows(session: Session, columns: Sequence[Any], ids: set[int]) -> dict[int, Any]:
    """Rows of ``columns`` (the first: the id) by id, as plain result rows."""
    if not ids:
        return {}
    return {
        row.id: row
        for row in session.execute(select(*columns).where(one_of(session, columns[0], ids)))
    }


def _counts(session: Session, column: Any, ids: Sequence[int]) -> dict[int, int]:
    """``column`` value -> number of rows, for the values in ``ids``, in one grouped query."""
    if not ids:
        return {}
    query = select(column, func.count()).where(one_of(session, column, ids)).group_by(column)
    return {key: int(n) for key, n in session.execute(query)}


def _same_fingerprint_reviews(
    session: Session, env_ids: Sequence[int], fingerprints: set[str]
) -> dict[tuple[int, str], list[EnvironmentReview]]:
    """Reviews of these environments with one of these fingerprints, by (environment, fp)."""
    reviews: dict[tuple[int, str], list[EnvironmentReview]] = defaultdict(list)
    if env_ids and fingerprints:
        for review in session.scalars(
            select(EnvironmentReview).where(
                one_of(session, EnvironmentReview.managed_environment_id, env_ids),
                one_of(session, EnvironmentReview.fingerprint, sorted(fingerprints)),
            )
        ):
            reviews[(review.managed_environment_id, review.fingerprint)].append(review)
    return reviews


def _grouped_counts(
    session: Session, parent: Any, status: Any, parent_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """parent id -> status -> row count, in one grouped query."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if parent_ids:
        for parent_id, value, n in session.execute(
            select(parent, status, func.count())
            .where(one_of(session, parent, parent_ids))
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


ProofRule = Callable[[ProofView, RunRecord, RunScope], Proof]
