"""The reconciliation sensors: a stale scan every minute, and an immediate look at tagged
Dagster runs that ended while their operation run was still open."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType

from opsrecon_dagster.assets.artifacts import decision_tags, proof_check_fields
from opsrecon_dagster.operations.lifecycle import TransitionStatus
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG
from opsrecon_dagster.reconciliation.reconciler import Reconciler, ReconcileResult
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource
from opsrecon_dagster.resources.dagster_view import InstanceDagsterView
from opsrecon_dagster.sensors.guard import guarded_tick, sanitized_failure

# The daemon writes each returned asset event separately (about 20-30 ms each on PostgreSQL),
# so 200 decisions stay far inside the 60 s sensor limit together with the batch's queries.
BATCH_SIZE = 200


# Dagster run states in which a decided run's worker can no longer be trusted to end it.
UNFINISHED = {"STARTED", "STARTING", "NOT_STARTED", "CANCELING"}


def observation(result: ReconcileResult) -> dg.AssetObservation | None:
    """The decision as an observation on the run's asset partition (supported types only)."""
    verdict = result.verdict
    if result.asset_key is None or result.partition_key is None or verdict.outcome is None:
        return None
    fields = _check_fields(result)
    return dg.AssetObservation(
        asset_key=result.asset_key,
        partition=result.partition_key,
        description=fields["description"],
        metadata=fields["metadata"],
    )


def _check_fields(result: ReconcileResult) -> dict[str, Any]:
    verdict = result.verdict
    assert verdict.outcome is not None
    return proof_check_fields(
        result.run_id,
        verdict.outcome,
        verdict.reason_code,
        "reconciler",
        {"adapter": dg.MetadataValue.text(verdict.adapter)},
    )


def record_on_dagster_runs(
    instance: dg.DagsterInstance, results: Sequence[ReconcileResult]
) -> None:
    """Put each decision on the operation run's own Dagster run.

    - tags ``opsrecon/outcome`` and ``opsrecon/reason`` (filterable on the Runs page);
    - the partition's proof check evaluation, as an event of that run: it resolves the check
      the run had planned (a killed worker's check is no longer "running"), and a worker that
      reports later evaluates the same check again with the row's final decision;
    - a Dagster run that cannot end itself is ended: still ``STARTED`` (its worker went
      stale) is marked failed, still waiting in the queue is canceled, each with a message
      naming the decision, so the UI shows no run as running forever.
    """
    for result in results:
        verdict = result.verdict
        dagster_run_id = verdict.evidence.dagster_run_id
        if result.status is not TransitionStatus.APPLIED or verdict.outcome is None:
            continue
        run = instance.get_run_by_id(dagster_run_id) if dagster_run_id else None
        if run is None:
            continue
        instance.add_run_tags(run.run_id, decision_tags(verdict.outcome, verdict.reason_code))
        if result.asset_key is not None and result.partition_key is not None:
            evaluation = dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(result.asset_key),
                partition=result.partition_key,
                **_check_fields(result),
            )
            instance.report_dagster_event(
                DagsterEvent(
                    event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
                    job_name=run.job_name,
                    event_specific_data=evaluation,
                ),
                run_id=run.run_id,
            )
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
) -> tuple[list[ReconcileResult], list[dg.AssetObservation]]:
    """Run one reconciliation batch; returns the results and an observation per decision
    written, for the caller to report. The decisions also go on the operation runs' own
    Dagster runs (``record_on_dagster_runs``).

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
            record_on_dagster_runs(instance, results)
    events = [
        obs
        for r in results
        if r.status is TransitionStatus.APPLIED and (obs := observation(r)) is not None
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
        # An error fails the tick visibly, with a sanitized message; the stale scan remains
        # the safety net for a run this sensor could not decide.
        try:
            results, events = reconcile_batch(
                context.instance, app_db, now=clock.now(), run_ids=[int(tag)]
            )
        except Exception as exc:
            raise sanitized_failure(f"reconciling operation run {tag}", exc) from None
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
