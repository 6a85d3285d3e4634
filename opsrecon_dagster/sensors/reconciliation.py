"""The reconciliation sensors: a stale scan every 10 s, and an immediate look at tagged
Dagster runs that ended while their operation run was still open."""

import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import dagster as dg
from dagster._core.events import (
    AssetObservationData,
    DagsterEvent,
    DagsterEventType,
    StepMaterializationData,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from pydantic import BaseModel, ConfigDict, ValidationError

from opsrecon_dagster.assets.artifacts import decision_tags, proof_check_fields
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.operations.lifecycle import TransitionStatus
from opsrecon_dagster.operations.reasons import Language
from opsrecon_dagster.reconciliation import outbox
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG, run_tags
from opsrecon_dagster.reconciliation.outbox import DecisionEvent
from opsrecon_dagster.reconciliation.reconciler import Reconciler, ReconcileResult
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource
from opsrecon_dagster.sensors.gc_pacing import paced_collection
from opsrecon_dagster.sensors.guard import guarded_tick, sanitized_failure
from opsrecon_dagster.sensors.instance_view import InstanceDagsterView

# Decisions per batch (one transaction each); a tick runs batches until the backlog is empty
# or its budget is spent, well inside Dagster's 60 s limit for a sensor evaluation.
# Per-batch costs (Dagster reads, the candidate query, a commit) are spread over more runs
# at 1,000 than at 500 (sensor path about 8% faster, benchmarks/reconcile_backlog.py);
# a batch's locks are held for about half a second.
BATCH_SIZE = 1000
TICK_BUDGET_SECONDS = 20.0
# The daemon evaluates sensors in a loop every 5 s. The stale scan (silent workers, launches
# that never started) runs every other loop; the run-end sensors every loop.
STALE_SCAN_INTERVAL_SECONDS = 10
# No single statement of a tick may outlast Dagster's limit for a sensor evaluation.
STATEMENT_TIMEOUT_MS = 55_000
RUN_END_INTERVAL_SECONDS = 3


# Dagster run states in which a decided run can no longer be trusted to end by itself, with
# what the failure message says about it.
ENDING_NOTES = {
    "STARTED": "its worker is gone",
    "STARTING": "its worker is gone",
    "CANCELING": "its worker is gone",
    "NOT_STARTED": "it never started",
    "QUEUED": "it never left the run queue",
}


AssetEvent = dg.AssetObservation | dg.AssetMaterialization


def asset_event(event: DecisionEvent, language: Language = "en") -> AssetEvent | None:
    """The decision on the run's asset partition (supported types only).

    Usually an observation. When the run's artifacts exist but no materialization names the
    run (its worker died between committing them and reporting), a materialization with the
    proof's metadata, so the partition shows the artifact that exists.
    """
    if event.asset_key is None or event.partition_key is None:
        return None
    fields = _check_fields(event, language)
    if event.materialize:
        counts = {k: dg.MetadataValue.int(v) for k, v in sorted(event.counts.items())}
        return dg.AssetMaterialization(
            asset_key=event.asset_key,
            partition=event.partition_key,
            description=fields["description"],
            metadata={**fields["metadata"], **counts},
        )
    return dg.AssetObservation(
        asset_key=event.asset_key,
        partition=event.partition_key,
        description=fields["description"],
        metadata=fields["metadata"],
    )


def _check_fields(event: DecisionEvent, language: Language) -> dict[str, Any]:
    return proof_check_fields(
        event.operation_run_id,
        event.outcome,
        event.reason_code,
        event.decided_by.value,
        {"adapter": dg.MetadataValue.text(event.adapter)},
        language,
    )


JobLookup = Callable[[str], dg.JobDefinition | None]

# Dagster run ids for operation runs that never had one (uuid5: a repeat finds the same run).
NEVER_LAUNCHED = uuid.UUID("6f1d8f7e-3c1a-4f55-9d62-0b9a7f1c2e41")


def jobs_of(repository: dg.RepositoryDefinition | None) -> JobLookup | None:
    """Job lookup in the code location a sensor runs in (None when evaluated without one)."""
    if repository is None:
        return None
    return lambda name: repository.get_job(name) if repository.has_job(name) else None


def _dagster_run_id_of(event: DecisionEvent, jobs: JobLookup | None) -> str | None:
    """The id of the decision's Dagster run: the linked one, or for a run that never had one
    and is shown failed, its stand-in's (see ``_dagster_run_of``); None when there is none."""
    if event.dagster_run_id:
        return event.dagster_run_id
    if event.superseded or event.job is None or event.partition_key is None or jobs is None:
        return None
    if event.outcome not in (RunOutcome.FAILED, RunOutcome.BLOCKED):
        return None
    return str(uuid.uuid5(NEVER_LAUNCHED, str(event.operation_run_id)))


def _dagster_run_of(
    instance: dg.DagsterInstance,
    event: DecisionEvent,
    jobs: JobLookup | None,
    known: Mapping[str, dg.DagsterRun] | None = None,
) -> dg.DagsterRun | None:
    """The decision's Dagster run (from ``known`` when the caller read the batch's runs at
    once). A run that never had one (never launched) gets one in ``NOT_STARTED``, planned
    for its partition, so that failing it below shows the partition's latest attempt as
    failed instead of leaving an older success on top."""
    run_id = _dagster_run_id_of(event, jobs)
    if run_id is None:
        return None
    existing = known.get(run_id) if known is not None else instance.get_run_by_id(run_id)
    if existing is not None or event.dagster_run_id or jobs is None:
        return existing
    if event.job is None or event.partition_key is None:
        return None
    job = jobs(event.job)
    if job is None:
        return None
    return instance.create_run_for_job(
        job,
        run_id=run_id,
        status=dg.DagsterRunStatus.NOT_STARTED,
        tags={
            **run_tags(event.operation_run_id, event.partition_key),
            "dagster/partition": event.partition_key,
        },
        asset_selection=frozenset(job.asset_layer.executable_asset_keys),
    )


def record_on_dagster_run(
    instance: dg.DagsterInstance,
    event: DecisionEvent,
    language: Language = "en",
    jobs: JobLookup | None = None,
    known: Mapping[str, dg.DagsterRun] | None = None,
) -> None:
    """Put a decision on the operation run's own Dagster run (each step is idempotent, so a
    repeated delivery changes nothing):

    - tags ``opsrecon/outcome`` and ``opsrecon/reason`` (filterable on the Runs page);
    - the partition's proof check evaluation, as an event of that run: it resolves the check
      the run had planned (a killed worker's check is no longer "running"), and a worker that
      reports later evaluates the same check again with the row's final decision;
    - a Dagster run that cannot end itself is failed with a message naming the decision:
      still ``STARTED`` (its worker went stale), still waiting in the queue, or never
      launched at all; so the UI shows no run as running forever, and the partition's
      latest attempt agrees with the row.
    """
    run = _dagster_run_of(instance, event, jobs, known)
    if run is None:
        return
    instance.add_run_tags(run.run_id, decision_tags(event.outcome, event.reason_code))
    # The partition's check shows its newest run: a superseded run's decision stays on its
    # Dagster run (tags, end) and in the asset's event history, not on the partition's check.
    if event.asset_key is not None and event.partition_key is not None and not event.superseded:
        evaluation = dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(event.asset_key),
            partition=event.partition_key,
            **_check_fields(event, language),
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
        f"operation run {event.operation_run_id} was decided {event.outcome.value} "
        f"({event.reason_code}) by the reconciler"
    )
    why = ENDING_NOTES.get(run.status.value)
    if why is not None:
        instance.report_run_failed(run, message=f"{note}; {why}")


@dataclass(frozen=True)
class Delivery:
    """Asset events still to be written for pending outbox entries, and those entries."""

    events: list[AssetEvent] = field(default_factory=list)
    entry_ids: list[int] = field(default_factory=list)


def prepare_delivery(
    instance: dg.DagsterInstance,
    entries: Sequence[outbox.Pending],
    language: Language = "en",
    jobs: JobLookup | None = None,
) -> Delivery:
    """Record each pending decision on its Dagster run and build its asset event (the
    entries' Dagster runs are read in one query)."""
    ids = {i for e in entries if (i := _dagster_run_id_of(e.event, jobs)) is not None}
    known = (
        {r.run_id: r for r in instance.get_runs(filters=dg.RunsFilter(run_ids=list(ids)))}
        if ids
        else {}
    )
    events: list[AssetEvent] = []
    for entry in entries:
        record_on_dagster_run(instance, entry.event, language, jobs, known)
        if (event := asset_event(entry.event, language)) is not None:
            events.append(event)
    return Delivery(events, [e.id for e in entries])


@dataclass(frozen=True)
class Batch:
    """One reconciliation batch: its results, and the delivery its caller must complete."""

    results: list[ReconcileResult]
    delivery: Delivery


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
    jobs: JobLookup | None = None,
    in_flight: Collection[int] = (),
) -> Batch:
    """Run one reconciliation batch and prepare the delivery of pending decisions.

    The batch's decisions enter the outbox with the decisions. Then pending entries, oldest
    first and at least a batch of them (those of ``run_ids`` only, when given), are
    recorded on their Dagster runs, and their asset events are returned for the caller to
    ``deliver``.

    The sensors, ``opsrecon reconcile`` and the demo all come through here.
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
        if dry_run:
            return Batch(results, Delivery())
        with app.sessions() as session:
            # At least a whole batch, so a batch's own entries fit behind older ones.
            entries = outbox.pending(
                session,
                run_ids=run_ids,
                limit=max(limit, outbox.EMIT_LIMIT),
                in_flight=in_flight,
            )
        language = app.language
    return Batch(results, prepare_delivery(instance, entries, language, jobs))


def write_asset_events(instance: dg.DagsterInstance, events: Sequence[AssetEvent]) -> None:
    """Write runless asset events in batches: Dagster's event-log storage stores a batch of
    one kind for one asset in one statement on PostgreSQL (one by one elsewhere), instead of
    one round trip per event. Events are grouped by kind and asset, in order, since a batch
    updates its asset's latest-event index from its last event only."""
    for _key, group in groupby(events, key=lambda e: (type(e), e.asset_key)):
        entries = [_runless_entry(event) for event in group]
        instance.event_log_storage.store_event_batch(entries)


def _runless_entry(event: AssetEvent) -> EventLogEntry:
    """The event-log entry ``report_runless_asset_event`` would store for the event."""
    data: StepMaterializationData | AssetObservationData
    if isinstance(event, dg.AssetMaterialization):
        kind, data = DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(event)
    else:
        kind, data = DagsterEventType.ASSET_OBSERVATION, AssetObservationData(event)
    return EventLogEntry(  # type: ignore[no-untyped-call]
        user_message="",
        level=logging.INFO,
        job_name=RUNLESS_JOB_NAME,
        run_id=RUNLESS_RUN_ID,
        error_info=None,
        timestamp=time.time(),
        dagster_event=DagsterEvent(
            event_type_value=kind.value, event_specific_data=data, job_name=RUNLESS_JOB_NAME
        ),
    )


def deliver(instance: dg.DagsterInstance, app_db: AppDatabaseResource, delivery: Delivery) -> None:
    """Write a delivery's events, then acknowledge its entries. A crash in between leaves
    the entries pending, so the next delivery repeats them (at least once)."""
    write_asset_events(instance, delivery.events)
    if delivery.entry_ids:
        with app_db.opened() as app, app.sessions.begin() as session:
            outbox.acknowledge(session, delivery.entry_ids)


def drain(
    instance: dg.DagsterInstance,
    app_db: AppDatabaseResource,
    *,
    now: datetime,
    budget_seconds: float,
    jobs: JobLookup | None = None,
    limit: int = BATCH_SIZE,
) -> list[ReconcileResult]:
    """Reconcile and deliver batch after batch until the backlog is empty or the time budget
    is spent. Rows found alive or waiting are due again only later, so each batch reads
    rows the drain has not seen.

    A batch's events are written while the next batch is decided (one writer thread, one
    delivery at a time, in order): each side waits on its own database much of the time.
    The next batch leaves the entries in flight out of its delivery; a failed delivery
    leaves its entries pending and fails the drain once the batch in hand is committed.
    """
    deadline = time.monotonic() + budget_seconds
    results: list[ReconcileResult] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deliver") as writer:
        delivering: Future[None] | None = None
        in_flight: list[int] = []
        while True:
            with paced_collection():
                batch = reconcile_batch(
                    instance, app_db, now=now, limit=limit, jobs=jobs, in_flight=in_flight
                )
            if delivering is not None:
                delivering.result()
            delivering = writer.submit(_paced_deliver, instance, app_db, batch.delivery)
            in_flight = batch.delivery.entry_ids
            results += batch.results
            if len(batch.results) < limit or time.monotonic() >= deadline:
                delivering.result()
                return results


def _paced_deliver(
    instance: dg.DagsterInstance, app_db: AppDatabaseResource, delivery: Delivery
) -> None:
    with paced_collection():
        deliver(instance, app_db, delivery)


class TickCursor(BaseModel):
    """The reconciliation sensor's cursor: the last tick's figures, for the UI, and the
    thresholds the open rows' due times were computed with."""

    model_config = ConfigDict(extra="ignore")

    tick: str | None = None
    considered: int = 0
    decided: int = 0
    thresholds: str | None = None

    @classmethod
    def parse(cls, raw: str | None) -> "TickCursor":
        """A missing or unreadable cursor is an empty one."""
        try:
            return cls.model_validate_json(raw) if raw else cls()
        except ValidationError:
            return cls()


def pool_connections(instance: dg.DagsterInstance) -> None:
    """Reuse the instance's database connections for the rest of this evaluation.

    Dagster's PostgreSQL storage opens a new connection for every operation by default (an
    idle instance then holds none). A tick that ends hundreds of Dagster runs makes several
    writes per run, and would spend most of its time connecting (about 6 times slower,
    ``benchmarks/reconcile_backlog.py``). The sensor context disposes its instance, and the
    pool with it, when the evaluation ends. A no-op on SQLite storage.
    """
    instance.optimize_for_webserver(
        statement_timeout=STATEMENT_TIMEOUT_MS, pool_recycle=3600, max_overflow=4
    )


def restamp_on_new_thresholds(app_db: AppDatabaseResource, cursor: TickCursor) -> str:
    """Make every open row due now when the thresholds differ from those of the last tick
    (a configuration change, or the first tick): stored due times may then be too late.
    Returns the current thresholds' digest, for the cursor."""
    with app_db.opened() as app:
        digest = app.runs.rule.digest
        if cursor.thresholds != digest:
            app.runs.restamp_open()
    return digest


@dg.sensor(
    minimum_interval_seconds=STALE_SCAN_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Finalizes stale operation runs from the proof their artifacts give.",
)
def reconciliation_sensor(
    context: dg.SensorEvaluationContext, app_db: AppDatabaseResource, clock: ClockResource
) -> dg.SensorResult:
    """Each tick decides stale open runs in batches, earliest due first, for up to
    ``TICK_BUDGET_SECONDS``.

    The backlog lives in the database (open runs by their stored due time), so a backlog
    larger than a tick drains over ticks; the cursor records the last tick's figures for
    the UI.
    """

    def tick() -> dg.SensorResult:
        pool_connections(context.instance)
        thresholds = restamp_on_new_thresholds(app_db, TickCursor.parse(context.cursor))
        results = drain(
            context.instance,
            app_db,
            now=clock.now(),
            budget_seconds=TICK_BUDGET_SECONDS,
            jobs=jobs_of(context.repository_def),
            limit=BATCH_SIZE,
        )
        decided = sum(r.status is TransitionStatus.APPLIED for r in results)
        waiting = sum(r.verdict.outcome is None for r in results)
        cursor = TickCursor(
            tick=datetime.now(UTC).isoformat(),
            considered=len(results),
            decided=decided,
            thresholds=thresholds,
        ).model_dump_json()
        if not results:
            return dg.SensorResult(cursor=cursor, skip_reason="no stale operation runs")
        context.log.info(
            f"considered {len(results)}, decided and reported {decided}, no decision yet {waiting}"
        )
        return dg.SensorResult(cursor=cursor)

    # A batch that fails commits no decision (one transaction); decisions whose events were
    # not written stay in the outbox, and the next batch (this tick's or the next) reports
    # them again.
    return guarded_tick(context, "reconciliation", tick)


def _run_end_sensor(status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
    name = f"reconcile_on_run_{status.value.lower()}"

    @dg.run_status_sensor(
        run_status=status,
        name=name,
        # Every run, including those executed in-process (the CLI, the demo), which carry
        # no code location; runs without an operation run tag are ignored below.
        monitor_all_code_locations=True,
        # Below the daemon's 5 s loop, so every loop evaluates it (an interval of exactly 5 s
        # would be missed by a hair on every other loop, i.e. every 10 s).
        minimum_interval_seconds=RUN_END_INTERVAL_SECONDS,
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
            batch = reconcile_batch(
                context.instance,
                app_db,
                now=clock.now(),
                run_ids=[int(tag)],
                jobs=jobs_of(context.repository_def),
            )
            deliver(context.instance, app_db, batch.delivery)
        except Exception as exc:
            raise sanitized_failure(f"reconciling operation run {tag}", exc) from None
        for r in batch.results:
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
