"""The reconciliation sensors: a stale scan every minute, and an immediate look at tagged
Dagster runs that ended while their operation run was still open."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from opsrecon_dagster.assets.artifacts import decision_tags, proof_check_fields
from opsrecon_dagster.operations.lifecycle import TransitionStatus
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG
from opsrecon_dagster.reconciliation.reconciler import Reconciler, ReconcileResult
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource
from opsrecon_dagster.resources.dagster_view import InstanceDagsterView
from opsrecon_dagster.sensors.guard import guarded_tick

# The daemon writes each returned asset event separately (about 20-30 ms each on PostgreSQL),
# so 200 decisions stay far inside the 60 s sensor limit together with the batch's queries.
BATCH_SIZE = 200


DecisionEvent = dg.AssetObservation | dg.AssetCheckEvaluation
# Dagster run states in which a decided run's worker can no longer be trusted to end it.
UNFINISHED = {"STARTED", "STARTING", "NOT_STARTED", "CANCELING"}


def decision_events(result: ReconcileResult) -> list[DecisionEvent]:
    """The decision on the run's asset partition: an observation with the reason, and the
    partition's proof check evaluation (supported types only)."""
    verdict = result.verdict
    if result.asset_key is None or result.partition_key is None or verdict.outcome is None:
        return []
    fields = proof_check_fields(
        result.run_id,
        verdict.outcome,
        verdict.reason_code,
        "reconciler",
        {"adapter": dg.MetadataValue.text(verdict.adapter)},
    )
    return [
        dg.AssetObservation(
            asset_key=result.asset_key,
            partition=result.partition_key,
            description=fields["description"],
            metadata=fields["metadata"],
        ),
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(result.asset_key), partition=result.partition_key, **fields
        ),
    ]


def close_dagster_runs(instance: dg.DagsterInstance, results: Sequence[ReconcileResult]) -> None:
    """Put each decision on its Dagster run, and end Dagster runs that can no longer end
    themselves: a decided run still ``STARTED`` (its worker went stale) is marked failed, a
    decided run still waiting in the queue is canceled, each with a message naming the
    decision, so the UI does not show them as running forever."""
    for result in results:
        verdict = result.verdict
        dagster_run_id = verdict.evidence.dagster_run_id
        if result.status is not TransitionStatus.APPLIED or verdict.outcome is None:
            continue
        if dagster_run_id is None:
            continue
        run = instance.get_run_by_id(dagster_run_id)
        if run is None:
            continue
        instance.add_run_tags(dagster_run_id, decision_tags(verdict.outcome, verdict.reason_code))
        note = (
            f"operation run {result.run_id} was decided {verdict.outcome.value} "
            f"({verdict.reason_code}) by the reconciler"
        )
        if run.status.value in UNFINISHED:
            instance.report_run_failed(run, message=f"{note}; its worker is gone")
        elif run.status is dg.DagsterRunStatus.QUEUED:
            instance.report_run_canceled(run, message=f"{note}; it never left the run queue")


def reconcile_batch(
    instance: dg.DagsterInstance,
    app_db: AppDatabaseResource,
    *,
    now: datetime | None = None,
    run_ids: Sequence[int] | None = None,
    limit: int = BATCH_SIZE,
    op_type: str | None = None,
    workspace_id: int | None = None,
    dry_run: bool = False,
) -> tuple[list[ReconcileResult], list[DecisionEvent]]:
    """Run one reconciliation batch; returns the results and the Dagster events (observation
    and check evaluation) of the decisions written. Dagster runs of decided operation runs
    get the decision as tags, and those that can no longer end themselves are ended.

    The sensors and ``opsrecon reconcile`` all come through here.
    """
    at = now
    with app_db.opened() as app:
        reconciler = Reconciler(
            app.sessions,
            app.runs,
            InstanceDagsterView(instance),
            clock=(lambda: at) if at is not None else None,
        )
        results = reconciler.reconcile(
            limit=limit,
            run_ids=run_ids,
            op_type=op_type,
            workspace_id=workspace_id,
            dry_run=dry_run,
        )
        if not dry_run:
            close_dagster_runs(instance, results)
    events = [
        e for r in results if r.status is TransitionStatus.APPLIED for e in decision_events(r)
    ]
    return results, events


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Finalizes stale operation runs from the proof their artifacts give.",
)
def reconciliation_sensor(
    context: dg.SensorEvaluationContext, app_db: AppDatabaseResource, clock: ClockResource
) -> dg.SensorResult:
    """Each tick decides a bounded batch of stale open runs, oldest progress first.

    The backlog lives in the database (open runs by last progress), so a large backlog
    drains over ticks; the cursor records the last tick's figures for the UI.
    """

    def tick() -> dg.SensorResult:
        results, events = reconcile_batch(
            context.instance, app_db, now=clock.now(), limit=BATCH_SIZE
        )
        decided = sum(r.status is TransitionStatus.APPLIED for r in results)
        waiting = sum(r.verdict.outcome is None for r in results)
        cursor = json.dumps(
            {"tick": datetime.now(UTC).isoformat(), "considered": len(results), "decided": decided}
        )
        if not results:
            return dg.SensorResult(cursor=cursor, skip_reason="no stale operation runs")
        context.log.info(f"considered {len(results)}, decided {decided}, no decision yet {waiting}")
        return dg.SensorResult(asset_events=events, cursor=cursor)

    # A failed batch commits nothing (one transaction), so skipping it loses no decision.
    return guarded_tick(context, "reconciliation", tick)


def _run_end_sensor(status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
    name = f"reconcile_on_run_{status.value.lower()}"

    @dg.run_status_sensor(
        run_status=status,
        name=name,
        monitor_all_code_locations=False,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Reconciles a tagged operation run at once when its Dagster run ends "
        f"with {status.value}.",
    )
    def _sensor(
        context: dg.RunStatusSensorContext, app_db: AppDatabaseResource, clock: ClockResource
    ) -> None:
        tag = context.dagster_run.tags.get(RUN_TAG)
        if tag is None or not tag.isdigit():
            return
        # Never raise: a raised error would advance the cursor past this run anyway; the
        # stale scan remains the safety net for anything this misses.
        try:
            results, events = reconcile_batch(
                context.instance, app_db, now=clock.now(), run_ids=[int(tag)]
            )
        except Exception as exc:
            context.log.warning(f"operation run {tag}: not reconciled ({type(exc).__name__})")
            return
        for event in events:
            context.instance.report_runless_asset_event(event)
        for r in results:
            context.log.info(
                f"operation run {r.run_id}: {r.verdict.outcome or 'no decision'} "
                f"({r.verdict.reason_code})"
            )

    return _sensor


RUN_END_SENSORS = [
    _run_end_sensor(s)
    for s in (
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
        dg.DagsterRunStatus.SUCCESS,
    )
]
