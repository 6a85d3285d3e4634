"""How decisions show on a Dagster instance: tags and a check evaluation on each decision's
Dagster run, the end of a run that cannot end itself, and an asset event on its partition.
With the reads of ``instance/view.py``, ``InstancePort`` is the reconciliation service's
Dagster side (``reconciliation/service.py``, ``DagsterPort``).

A delivery's writes are grouped per kind, not made decision by decision: its Dagster runs
are read in one query, stand-in runs are created once per group (``outbox.with_stand_ins``),
every event goes in with one transaction per storage file (``instance/events.py``), and only
tags and run failures are one write per Dagster run (Dagster has no batch form for them).
Every write is idempotent: a stand-in that exists is not created again, a run already ended
is not failed again, and for decisions that may be shown already (a repeated delivery, a
job's own decision) what Dagster has is read first and not written twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster._core.errors import DagsterRunAlreadyExists
from dagster._core.events import (
    AssetMaterializationPlannedData,
    AssetObservationData,
    DagsterEvent,
    DagsterEventType,
    StepMaterializationData,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.plan.objects import StepFailureData
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster_shared.error import SerializableErrorInfo

from opsrecon_dagster.assets.artifacts import decision_tags, failure_message, proof_check_fields
from opsrecon_dagster.instance.events import store_events
from opsrecon_dagster.instance.view import InstanceDagsterView
from opsrecon_dagster.operations.outbox import NEVER_LAUNCHED, DecisionEvent, needs_stand_in
from opsrecon_dagster.operations.reasons import Language
from opsrecon_dagster.reconciliation.dagster_view import run_tags

# Dagster run states in which a decided run can no longer be trusted to end by itself, with
# what the failure message says about it (English, German).
ENDING_NOTES = {
    "STARTED": ("its worker is gone", "sein Worker ist nicht mehr da"),
    "STARTING": ("its worker never started", "sein Worker hat nie begonnen"),
    "CANCELING": ("its worker is gone", "sein Worker ist nicht mehr da"),
    "NOT_STARTED": ("it never started", "er hat nie begonnen"),
    "QUEUED": ("it never left the run queue", "er hat die Warteschlange nie verlassen"),
}
# Step events after which a step is over; a started step without one had a worker that died.
_STEP_ENDS = {
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SKIPPED,
    DagsterEventType.STEP_UP_FOR_RETRY,
}
STAND_IN_TAG = "opsrecon/stand_in"
# Clock margin when looking for a decision's events written before (Dagster's clock vs ours).
_SKEW = timedelta(minutes=5)
# Operation run ids a stand-in's failure message names before "and N more".
_NAMED = 10

AssetEvent = dg.AssetObservation | dg.AssetMaterialization
JobLookup = Callable[[str], dg.JobDefinition | None]


def jobs_of(repository: dg.RepositoryDefinition | None) -> JobLookup | None:
    """Job lookup in the code location a sensor runs in (None when evaluated without one)."""
    if repository is None:
        return None
    return lambda name: repository.get_job(name) if repository.has_job(name) else None


def asset_event(event: DecisionEvent, language: Language = "en") -> AssetEvent | None:
    """The decision on the run's asset partition (supported types only).

    Usually an observation. When the run's artifacts exist but no materialization names the
    run (its worker died between committing them and reporting), a materialization with the
    proof's metadata, so the partition shows the artifact that exists. None for a superseded
    run: a newer run of the partition stands there, and an older run's decision must not read
    as the partition's state (it stays on its own Dagster run and in the audit trail).
    """
    if event.asset_key is None or event.partition_key is None or event.superseded:
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
        dagster_run_id=_run_id_of(event),
    )


def _stand_in_id(event: DecisionEvent) -> str | None:
    """The stand-in run of a decision that needs one (entries written before stand-ins were
    grouped name none: theirs is one per operation run, as it was then)."""
    if not needs_stand_in(event):
        return None
    if event.stand_in_run_id is not None:
        return event.stand_in_run_id
    return str(uuid.uuid5(NEVER_LAUNCHED, str(event.operation_run_id)))


def _run_id_of(event: DecisionEvent) -> str | None:
    """The Dagster run a decision is shown on: its own, or its stand-in."""
    return event.dagster_run_id or _stand_in_id(event)


def _entry(run_id: str, job_name: str, kind: DagsterEventType, data: Any) -> EventLogEntry:
    """An event-log entry as Dagster's own reporting would build it."""
    return EventLogEntry(  # type: ignore[no-untyped-call]
        user_message="",
        level=logging.INFO,
        job_name=job_name,
        run_id=run_id,
        error_info=None,
        timestamp=time.time(),
        dagster_event=DagsterEvent(
            event_type_value=kind.value, event_specific_data=data, job_name=job_name
        ),
    )


def _runless_entry(event: AssetEvent) -> EventLogEntry:
    """The event-log entry ``report_runless_asset_event`` would store for the event."""
    if isinstance(event, dg.AssetMaterialization):
        return _entry(
            RUNLESS_RUN_ID,
            RUNLESS_JOB_NAME,
            DagsterEventType.ASSET_MATERIALIZATION,
            StepMaterializationData(event),
        )
    return _entry(
        RUNLESS_RUN_ID,
        RUNLESS_JOB_NAME,
        DagsterEventType.ASSET_OBSERVATION,
        AssetObservationData(event),
    )


def _key(event: DecisionEvent) -> tuple[int, str, str]:
    """What identifies a decision among the events Dagster has: its run, outcome and reason
    (a correction of the same run is another decision)."""
    return (event.operation_run_id, event.outcome.value, event.reason_code)


def _metadata_key(metadata: Mapping[str, Any]) -> tuple[int, str, str] | None:
    def value(name: str) -> Any:
        return getattr(metadata.get(name), "value", None)

    run_id, outcome, reason = value("operation_run_id"), value("outcome"), value("reason_code")
    if isinstance(run_id, int) and isinstance(outcome, str) and isinstance(reason, str):
        return (run_id, outcome, reason)
    return None


@dataclass
class _Shown:
    """What Dagster already has of decisions that may be shown in part."""

    checks: set[tuple[str, str | None, tuple[int, str, str]]] = field(default_factory=set)
    planned: set[tuple[str, str | None]] = field(default_factory=set)
    asset_events: set[tuple[str, str | None, tuple[int, str, str]]] = field(default_factory=set)


class InstancePort(InstanceDagsterView):
    """The reconciliation service's Dagster side over a real instance: its reads
    (``InstanceDagsterView``), and decisions shown on runs, checks and partitions. With
    ``jobs`` (the code location's), a run that never had a Dagster run gets a stand-in to
    show it failed."""

    def __init__(self, instance: dg.DagsterInstance, jobs: JobLookup | None = None) -> None:
        super().__init__(instance)
        self._jobs = jobs

    def show(
        self,
        decisions: Sequence[DecisionEvent],
        language: Language,
        *,
        check_existing: Collection[int] = (),
    ) -> None:
        """Show a delivery's decisions, grouped per kind of write (see the module's notes).
        ``check_existing``: operation run ids whose decisions may be shown in part already;
        only what Dagster does not have yet is written for them."""
        if not decisions:
            return
        instance = self._instance
        stand_ins = self._stand_ins(decisions)
        wanted = {i for d in decisions if (i := _run_id_of(d)) is not None}
        runs = (
            {r.run_id: r for r in instance.get_runs(filters=dg.RunsFilter(run_ids=list(wanted)))}
            if wanted
            else {}
        )
        for run_id, (job, group) in stand_ins.items():
            if run_id not in runs:
                runs[run_id] = self._create_stand_in(run_id, job, group)
        shown = self._already_shown(
            [d for d in decisions if d.operation_run_id in check_existing], runs
        )
        entries = list(self._entries(decisions, runs, shown, language))
        for run_id, tags in self._tags(decisions, runs, stand_ins).items():
            instance.add_run_tags(run_id, tags)
        store_events(instance, entries)
        self._end_runs(decisions, runs, stand_ins, language)

    # ------------------------------------------------------------------ stand-in runs
    def _stand_ins(
        self, decisions: Sequence[DecisionEvent]
    ) -> dict[str, tuple[dg.JobDefinition, list[DecisionEvent]]]:
        """Stand-in run id -> its job and decisions (none without the code location's jobs)."""
        found: dict[str, tuple[dg.JobDefinition, list[DecisionEvent]]] = {}
        if self._jobs is None:
            return found
        for decision in decisions:
            run_id = _stand_in_id(decision)
            if run_id is None or decision.job is None:
                continue
            if run_id not in found:
                job = self._jobs(decision.job)
                if job is None:
                    continue
                found[run_id] = (job, [])
            found[run_id][1].append(decision)
        return found

    def _create_stand_in(
        self, run_id: str, job: dg.JobDefinition, group: Sequence[DecisionEvent]
    ) -> dg.DagsterRun:
        """A run in ``NOT_STARTED`` for decisions whose runs never had one; without an
        execution plan, so Dagster plans nothing itself: the delivery plans exactly the
        group's partitions (``_entries``). One decision's stand-in carries its run's tags."""
        first = group[0]
        tags = {STAND_IN_TAG: "never_launched", **decision_tags(first.outcome, first.reason_code)}
        if len(group) == 1 and first.partition_key is not None:
            tags |= run_tags(first.operation_run_id, first.partition_key)
            tags["dagster/partition"] = first.partition_key
        try:
            return self._instance.create_run(
                job_name=job.name,
                run_id=run_id,
                run_config=None,
                status=dg.DagsterRunStatus.NOT_STARTED,
                tags=tags,
                root_run_id=None,
                parent_run_id=None,
                step_keys_to_execute=None,
                execution_plan_snapshot=None,
                job_snapshot=job.get_job_snapshot(),
                parent_job_snapshot=None,
                asset_selection=frozenset(job.asset_layer.executable_asset_keys),
                asset_check_selection=None,
                resolved_op_selection=None,
                op_selection=None,
                remote_job_origin=None,
                job_code_origin=None,
                asset_graph=job.asset_layer.asset_graph,
            )
        except DagsterRunAlreadyExists:  # another delivery created it meanwhile
            run = self._instance.get_run_by_id(run_id)
            assert run is not None
            return run

    # ------------------------------------------------------------------ what exists
    def _already_shown(
        self, decisions: Sequence[DecisionEvent], runs: Mapping[str, dg.DagsterRun]
    ) -> _Shown:
        """Read what Dagster has of these decisions: check evaluations and planned
        partitions on their runs, asset events on their partitions."""
        shown = _Shown()
        if not decisions:
            return shown
        storage = self._instance.event_log_storage
        for run_id in {i for d in decisions if (i := _run_id_of(d)) is not None and i in runs}:
            kinds = {
                DagsterEventType.ASSET_CHECK_EVALUATION,
                DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
            }
            for record in storage.get_records_for_run(run_id, of_type=kinds, limit=100_000).records:
                dagster_event = record.event_log_entry.dagster_event
                if dagster_event is None:
                    continue
                data = dagster_event.event_specific_data
                if isinstance(data, dg.AssetCheckEvaluation):
                    if (key := _metadata_key(data.metadata)) is not None:
                        shown.checks.add((run_id, data.partition, key))
                elif isinstance(data, AssetMaterializationPlannedData):
                    shown.planned.add((run_id, data.partition))
        self._asset_events_shown(decisions, shown)
        return shown

    def _asset_events_shown(self, decisions: Sequence[DecisionEvent], shown: _Shown) -> None:
        by_asset: dict[str, list[DecisionEvent]] = {}
        for d in decisions:
            if d.asset_key is not None and d.partition_key is not None:
                by_asset.setdefault(d.asset_key, []).append(d)
        for asset_key, group in by_asset.items():
            # Nothing of a decision was written before it was made; a decision stamped "as
            # of" a later instant (the demo, tests) bounds nothing on Dagster's clock.
            since = min(d.decided_at for d in group) - _SKEW
            records_filter = dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(asset_key),
                asset_partitions=sorted({d.partition_key for d in group if d.partition_key}),
                after_timestamp=since.timestamp() if since <= datetime.now(UTC) else None,
            )
            for fetch in (self._instance.fetch_observations, self._instance.fetch_materializations):
                for record in fetch(records_filter, limit=10_000).records:
                    event = record.asset_event
                    if event is not None and (key := _metadata_key(event.metadata)) is not None:
                        shown.asset_events.add((type(event).__name__, record.partition_key, key))

    # ------------------------------------------------------------------ the writes
    def _entries(
        self,
        decisions: Sequence[DecisionEvent],
        runs: Mapping[str, dg.DagsterRun],
        shown: _Shown,
        language: Language,
    ) -> Iterable[EventLogEntry]:
        """Every event of the delivery, in decision order: a stand-in's planned partition,
        the proof check's evaluation on the decision's run, the partition's asset event."""
        for d in decisions:
            run = runs.get(_run_id_of(d) or "")
            partition = d.partition_key
            if run is not None and d.asset_key is not None and not d.superseded:
                asset = dg.AssetKey(d.asset_key)
                if _stand_in_id(d) == run.run_id and (run.run_id, partition) not in shown.planned:
                    shown.planned.add((run.run_id, partition))
                    yield _entry(
                        run.run_id,
                        run.job_name,
                        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                        AssetMaterializationPlannedData(asset, partition=partition),
                    )
                if (run.run_id, partition, _key(d)) not in shown.checks:
                    evaluation = dg.AssetCheckEvaluation(
                        asset_key=asset, partition=partition, **_check_fields(d, language)
                    )
                    yield _entry(
                        run.run_id,
                        run.job_name,
                        DagsterEventType.ASSET_CHECK_EVALUATION,
                        evaluation,
                    )
            event = asset_event(d, language)
            if event is not None and (
                (type(event).__name__, partition, _key(d)) not in shown.asset_events
            ):
                yield _runless_entry(event)

    def _tags(
        self,
        decisions: Sequence[DecisionEvent],
        runs: Mapping[str, dg.DagsterRun],
        stand_ins: Mapping[str, object],
    ) -> dict[str, dict[str, str]]:
        """Decision tags for each decision's own Dagster run (stand-ins carry theirs from
        their creation); tags a run already has are not written again."""
        found: dict[str, dict[str, str]] = {}
        for d in decisions:
            run = runs.get(d.dagster_run_id or "")
            if run is None or run.run_id in stand_ins:
                continue
            tags = decision_tags(d.outcome, d.reason_code)
            if any(run.tags.get(k) != v for k, v in tags.items()):
                found[run.run_id] = tags  # the newest decision of the run wins
        return found

    def _end_runs(
        self,
        decisions: Sequence[DecisionEvent],
        runs: Mapping[str, dg.DagsterRun],
        stand_ins: Mapping[str, tuple[dg.JobDefinition, list[DecisionEvent]]],
        language: Language,
    ) -> None:
        """Fail each Dagster run that cannot end itself, with a message naming its
        decision in words; after its events, as a run's failure comes last. A dead worker's
        step is failed first, so the run page does not show it executing."""
        lang = 0 if language == "en" else 1

        def ending(run: dg.DagsterRun) -> str | None:
            why = ENDING_NOTES.get(run.status.value)
            return None if why is None else why[lang]

        notes: dict[str, tuple[str, str]] = {}
        for d in decisions:
            run = runs.get(d.dagster_run_id or "")
            if run is not None and run.run_id not in stand_ins and (why := ending(run)):
                notes[run.run_id] = (
                    why,
                    failure_message(
                        d.operation_run_id,
                        d.outcome,
                        d.reason_code,
                        d.decided_by.value,
                        language,
                        why,
                    ),
                )
        for run_id, (_job, group) in stand_ins.items():
            if (why := ending(runs[run_id])) is None:
                continue
            ids = [str(d.operation_run_id) for d in group]
            more = f" +{len(ids) - _NAMED}" if len(ids) > _NAMED else ""
            first = group[0]
            notes[run_id] = (
                why,
                failure_message(
                    f"{', '.join(ids[:_NAMED])}{more}",
                    first.outcome,
                    first.reason_code,
                    first.decided_by.value,
                    language,
                    why,
                ),
            )
        for run_id, (why, note) in notes.items():
            run = runs[run_id]
            if run.status.value in ("STARTED", "CANCELING"):
                self._fail_open_steps(run, why)
            self._instance.report_run_failed(run, message=note)

    def _fail_open_steps(self, run: dg.DagsterRun, why: str) -> None:
        """Report a step failure for each step the run started and never ended (its worker
        died holding it): Dagster's run page reads step states from these events only."""
        kinds = {DagsterEventType.STEP_START, *_STEP_ENDS}
        records = self._instance.event_log_storage.get_records_for_run(
            run.run_id, of_type=kinds, limit=10_000
        ).records
        started: dict[str, DagsterEvent] = {}
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type is DagsterEventType.STEP_START:
                started[event.step_key] = event
            else:
                started.pop(event.step_key, None)
        for start in started.values():  # rare (dead workers): one write per step
            failure = start._replace(
                event_type_value=DagsterEventType.STEP_FAILURE.value,
                event_specific_data=StepFailureData(  # type: ignore[no-untyped-call]
                    error=SerializableErrorInfo(message=why, stack=[], cls_name=None),
                    user_failure_data=None,
                ),
                message=why,
                pid=None,
            )
            self._instance.report_dagster_event(failure, run.run_id, logging.ERROR)


def write_asset_events(instance: dg.DagsterInstance, events: Sequence[AssetEvent]) -> None:
    """Write runless asset events in one batch (``instance/events.py``)."""
    store_events(instance, [_runless_entry(e) for e in events])
