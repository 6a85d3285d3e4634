"""What the Dagster UI shows per partition, compared with the newest operation run there.

The UI's partition status comes from Dagster's asset status cache and its check from the
latest check execution per partition; both are read here the way the webserver reads them
(internal APIs of the pinned Dagster version). ``disagreements`` lists every partition
whose status or proof check does not say what ``opsrecon runs list`` says for that
partition's newest run, and every Dagster run still shown as running or waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
from sqlalchemy import func, select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.families import FAMILIES
from opsrecon_dagster.assets.artifacts import PROOF_CHECK
from opsrecon_dagster.db.models import ManagedEnvironment, OperationRun
from opsrecon_dagster.instance.decisions import STAND_IN_TAG
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG

NOT_ENDED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class PartitionView:
    asset: str
    partition: str
    run_id: int
    outcome: str
    status: str  # "failed", "materialized" or "missing"
    check: str  # "passed", "warning", "error", "planned" or "none"
    check_run_id: int | None


# Partition status and proof check per outcome (README, "One presentation per outcome"); the
# check's description tells succeeded from partially succeeded ("passed: partial").
EXPECTED = {
    "succeeded": ("materialized", "passed"),
    "partially_succeeded": ("materialized", "passed: partial"),
    "blocked": ("failed", "warning"),
    "failed": ("failed", "error"),
}


def partition_views(app: AppContext, instance: dg.DagsterInstance) -> list[PartitionView]:
    """The UI's status and check of every partition with a completed newest run."""
    views = []
    with app.sessions() as session:
        for asset_key, family in FAMILIES.items():
            newest = (
                select(OperationRun.managed_environment_id, func.max(OperationRun.id).label("id"))
                .where(OperationRun.type == family.op_type.value)
                .group_by(OperationRun.managed_environment_id)
                .subquery()
            )
            rows = session.execute(
                select(ManagedEnvironment.partition_key, OperationRun.id, OperationRun.outcome)
                .join(newest, newest.c.id == OperationRun.id)
                .join(
                    ManagedEnvironment, ManagedEnvironment.id == OperationRun.managed_environment_id
                )
                .where(OperationRun.status == "completed")
            ).all()
            key = dg.AssetKey(asset_key)
            cache = get_and_update_asset_status_cache_value(instance, key, ENVIRONMENTS)
            failed: set[str] = set()
            done: set[str] = set()
            if cache is not None:
                failed = set(
                    cache.deserialize_failed_partition_subsets(ENVIRONMENTS).get_partition_keys()
                )
                done = set(
                    cache.deserialize_materialized_partition_subsets(
                        ENVIRONMENTS
                    ).get_partition_keys()
                )
            for partition, run_id, outcome in rows:
                status = (
                    "failed"
                    if partition in failed
                    else "materialized"
                    if partition in done
                    else "missing"
                )
                check, check_run = _check(instance, key, partition)
                views.append(
                    PartitionView(
                        asset_key,
                        partition,
                        run_id,
                        outcome or "-",
                        status,
                        check,
                        check_run,
                    )
                )
    return views


def _check(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> tuple[str, int | None]:
    check_key = dg.AssetCheckKey(key, PROOF_CHECK)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [check_key], partition_filter=PartitionKeyFilter(key=partition)
    ).get(check_key)
    if latest is None:
        return "none", None
    if latest.status is AssetCheckExecutionRecordStatus.PLANNED:
        return "planned", None
    evaluation = latest.event.asset_check_evaluation if latest.event else None
    if evaluation is None:
        return "none", None
    run_id = evaluation.metadata.get("operation_run_id")
    value = getattr(run_id, "value", None)
    if evaluation.passed:
        outcome = getattr(evaluation.metadata.get("outcome"), "value", None)
        state = "passed: partial" if outcome == "partially_succeeded" else "passed"
    elif evaluation.severity is dg.AssetCheckSeverity.WARN:
        state = "warning"
    else:
        state = "error"
    return state, value if isinstance(value, int) else None


def disagreements(app: AppContext, instance: dg.DagsterInstance) -> list[str]:
    """Every way the UI contradicts the rows (empty when it tells the same truth)."""
    problems = []
    for view in partition_views(app, instance):
        status, check = EXPECTED[view.outcome]
        if (view.status, view.check, view.check_run_id) != (status, check, view.run_id):
            problems.append(
                f"{view.asset}[{view.partition}] run {view.run_id} {view.outcome}: UI shows "
                f"{view.status}, check {view.check} (of run {view.check_run_id})"
            )
    # Dagster runs of operation runs (tagged, linked, or standing in for never-launched ones)
    # must all have ended; a run of another job (the scheduled overview refresh) is not one.
    with app.sessions() as session:
        linked = set(
            session.scalars(
                select(OperationRun.dagster_run_id).where(OperationRun.dagster_run_id.is_not(None))
            )
        )
    for record in instance.get_run_records(dg.RunsFilter(statuses=NOT_ENDED)):
        run = record.dagster_run
        if RUN_TAG in run.tags or STAND_IN_TAG in run.tags or run.run_id in linked:
            problems.append(f"Dagster run {run.run_id} is still {run.status.value}")
    return problems
