"""How a decision shows on a Dagster instance: tags and a check evaluation on its Dagster
run, the end of a run that cannot end itself, and an asset event on its partition. With
the reads of ``instance/view.py``, ``InstancePort`` is the reconciliation service's Dagster
side (``reconciliation/service.py``, ``DagsterPort``).
"""

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
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

from opsrecon_dagster.assets.artifacts import decision_tags, proof_check_fields
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.instance.view import InstanceDagsterView
from opsrecon_dagster.operations.reasons import Language
from opsrecon_dagster.reconciliation.dagster_view import run_tags
from opsrecon_dagster.reconciliation.outbox import DecisionEvent
from opsrecon_dagster.reconciliation.service import EventWriter

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


class InstancePort(InstanceDagsterView):
    """The reconciliation service's Dagster side over a real instance: its reads
    (``InstanceDagsterView``), and decisions recorded on runs and written as asset events.
    With ``jobs`` (the code location's), a run that never had a Dagster run gets one to
    show it failed (see ``_dagster_run_of``)."""

    def __init__(self, instance: dg.DagsterInstance, jobs: JobLookup | None = None) -> None:
        super().__init__(instance)
        self._jobs = jobs

    def record(self, decisions: Sequence[DecisionEvent], language: Language) -> EventWriter:
        """Record each decision on its Dagster run (the decisions' Dagster runs are read in
        one query) and return the writer of their asset events."""
        instance, jobs = self._instance, self._jobs
        ids = {i for d in decisions if (i := _dagster_run_id_of(d, jobs)) is not None}
        known = (
            {r.run_id: r for r in instance.get_runs(filters=dg.RunsFilter(run_ids=list(ids)))}
            if ids
            else {}
        )
        events: list[AssetEvent] = []
        for decision in decisions:
            record_on_dagster_run(instance, decision, language, jobs, known)
            if (event := asset_event(decision, language)) is not None:
                events.append(event)
        return lambda: write_asset_events(instance, events)
