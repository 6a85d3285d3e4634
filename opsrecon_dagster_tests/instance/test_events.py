"""``store_events`` against Dagster's own ``store_event``: the same events written both ways,
on Dagster's SQLite default and on its PostgreSQL storage, read back the same through every
read the UI and the reconciler use. This pins the storage layout ``instance/events.py``
reaches under: a Dagster upgrade that changes it fails here (docs/decisions.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,
)
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.events import AssetMaterializationPlannedData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from opsrecon_dagster.definitions import defs
from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.instance import decisions
from opsrecon_dagster.instance.events import store_events
from opsrecon_dagster.operations.outbox import DecisionEvent, with_stand_ins
from opsrecon_dagster.partitions import ENVIRONMENTS

ASSET = dg.AssetKey("inventory_items")
CHECK = dg.AssetCheckKey(ASSET, "proof")
PARTITIONS = ["acme.a", "acme.b", "acme.c"]


Writer = Callable[[dg.DagsterInstance, Sequence[EventLogEntry]], None]


def _dagster_one_by_one(instance: dg.DagsterInstance, entries: Sequence[EventLogEntry]) -> None:
    for entry in entries:
        instance.event_log_storage.store_event(entry)


def _events(instance: dg.DagsterInstance) -> list[EventLogEntry]:
    """A delivery's kinds of event: runless observations and a materialization, and on a
    stand-in run planned partitions and their check evaluations, in decision order."""
    job = defs.resolve_job_def("inventory_sync")
    run = instance.create_run_for_job(job, run_id="0" * 8 + "-0000-4000-8000-" + "0" * 12)
    found: list[EventLogEntry] = []
    for i, partition in enumerate(PARTITIONS):
        event = DecisionEvent(
            operation_run_id=i + 1,
            asset_key="inventory_items",
            job="inventory_sync",
            partition_key=partition,
            outcome=RunOutcome.SUCCEEDED if i == 2 else RunOutcome.FAILED,
            reason_code="inventory_all_types_covered" if i == 2 else "stale_without_proof",
            adapter="inventory_sync",
            decided_by=Actor.RECONCILER,
            decided_at=datetime.now(UTC),
            materialize=i == 2,
            counts={"types_succeeded": 3} if i == 2 else {},
        )
        [event] = with_stand_ins([event])
        asset_event = decisions.asset_event(event)
        assert asset_event is not None
        check = dg.AssetCheckEvaluation(
            asset_key=ASSET, partition=partition, **decisions._check_fields(event, "en")
        )
        found += [
            decisions._entry(
                run.run_id,
                run.job_name,
                dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                AssetMaterializationPlannedData(ASSET, partition=partition),
            ),
            decisions._entry(
                run.run_id, run.job_name, dg.DagsterEventType.ASSET_CHECK_EVALUATION, check
            ),
            decisions._runless_entry(asset_event),
        ]
    return found


def _read(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any]:
    """Everything the UI and the reconciler read of these events, storage ids left out."""

    def shape(records: Sequence[dg.EventLogRecord]) -> list[Any]:
        return [
            (r.partition_key, r.run_id, r.event_log_entry.dagster_event_type, r.asset_event)
            for r in records
        ]

    cache = get_and_update_asset_status_cache_value(instance, ASSET, ENVIRONMENTS)
    assert cache is not None
    [record] = instance.get_asset_records([ASSET])
    last = record.asset_entry.last_materialization_record
    checks = {}
    for partition in PARTITIONS:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [CHECK], partition_filter=PartitionKeyFilter(key=partition)
        )[CHECK]
        checks[partition] = (
            latest.status,
            latest.run_id,
            latest.event.asset_check_evaluation if latest.event else None,
        )
    return {
        "materializations": shape(instance.fetch_materializations(ASSET, limit=100).records),
        "observations": shape(instance.fetch_observations(ASSET, limit=100).records),
        "planned": shape(
            instance.fetch_planned_materializations(
                dg.AssetRecordsFilter(asset_key=ASSET), limit=100
            ).records
        ),
        "materialized_partitions": sorted(instance.get_materialized_partitions(ASSET)),
        "failed": sorted(
            cache.deserialize_failed_partition_subsets(ENVIRONMENTS).get_partition_keys()
        ),
        "done": sorted(
            cache.deserialize_materialized_partition_subsets(ENVIRONMENTS).get_partition_keys()
        ),
        "last_materialization": (last.partition_key, last.asset_materialization) if last else None,
        "last_run_id": record.asset_entry.last_run_id,
        "checks": checks,
        "run_events": [
            (e.dagster_event_type, e.dagster_event.partition if e.dagster_event else None)
            for e in instance.all_logs(run_id)
        ],
    }


def test_batched_writes_read_back_as_dagsters_own(
    storage_configs: Callable[[], dict[str, Any] | None],
) -> None:
    reads: dict[str, Any] = {}
    for name, write in (("dagster", _dagster_one_by_one), ("ours", store_events)):
        with dg.instance_for_test(overrides=storage_configs()) as instance:
            instance.add_dynamic_partitions(ENVIRONMENTS.name or "", PARTITIONS)
            entries = _events(instance)
            write(instance, entries)
            run = instance.get_run_by_id(entries[0].run_id)
            assert run is not None
            instance.report_run_failed(run, message="stand-in")
            reads[name] = _read(instance, run.run_id)
    assert reads["ours"] == reads["dagster"]
    # What the UI shows: the two failed partitions failed, the proven one materialized.
    assert reads["ours"]["failed"] == PARTITIONS[:2]
    assert reads["ours"]["done"] == PARTITIONS[2:]


def _evaluation(run: dg.DagsterRun, partition: str, i: int, passed: bool) -> EventLogEntry:
    event = DecisionEvent(
        operation_run_id=i,
        asset_key="inventory_items",
        job="inventory_sync",
        partition_key=partition,
        outcome=RunOutcome.SUCCEEDED if passed else RunOutcome.FAILED,
        reason_code="inventory_all_types_covered" if passed else "stale_without_proof",
        adapter="inventory_sync",
        decided_by=Actor.RECONCILER,
        decided_at=datetime.now(UTC),
    )
    check = dg.AssetCheckEvaluation(
        asset_key=ASSET, partition=partition, **decisions._check_fields(event, "en")
    )
    return decisions._entry(
        run.run_id, run.job_name, dg.DagsterEventType.ASSET_CHECK_EVALUATION, check
    )


def test_batched_check_evaluations_update_planned_executions_as_dagster_does(
    storage_configs: Callable[[], dict[str, Any] | None],
) -> None:
    """A run that planned its check on a partition has that execution updated (not a second
    one inserted); two evaluations of one check, run and partition leave the last; an
    unplanned one is inserted: the execution history reads as Dagster's own writes leave it."""
    job = defs.resolve_job_def("inventory_sync")
    histories: dict[str, Any] = {}
    for name, write in (("dagster", _dagster_one_by_one), ("ours", store_events)):
        with dg.instance_for_test(overrides=storage_configs()) as instance:
            instance.add_dynamic_partitions(ENVIRONMENTS.name or "", PARTITIONS)
            planned_run = instance.create_run_for_job(
                job, run_id="1" * 8 + "-0000-4000-8000-" + "0" * 12
            )
            other_run = instance.create_run_for_job(
                job, run_id="2" * 8 + "-0000-4000-8000-" + "0" * 12
            )
            planned = AssetCheckEvaluationPlanned(
                asset_key=ASSET,
                check_name=CHECK.name,
                partitions_subset=ENVIRONMENTS.empty_subset().with_partition_keys(PARTITIONS[:1]),
            )
            # The job's own planning, through Dagster in both cases.
            instance.event_log_storage.store_event(
                decisions._entry(
                    planned_run.run_id,
                    planned_run.job_name,
                    dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
                    planned,
                )
            )
            write(
                instance,
                [
                    _evaluation(planned_run, PARTITIONS[0], 1, passed=True),
                    _evaluation(other_run, PARTITIONS[1], 2, passed=True),
                    _evaluation(other_run, PARTITIONS[1], 3, passed=False),
                    _evaluation(other_run, PARTITIONS[2], 4, passed=True),
                ],
            )
            histories[name] = [
                (
                    r.run_id,
                    r.partition,
                    r.status,
                    r.event.asset_check_evaluation if r.event else None,
                )
                for r in instance.event_log_storage.get_asset_check_execution_history(
                    CHECK, limit=100
                )
            ]
    assert histories["ours"] == histories["dagster"]
    # One execution per run and partition (the unpartitioned ones: each run's creation
    # planned its check); the planned partition evaluated, the repeated one the last word.
    assert sorted((r[:4], p or "", s.value) for r, p, s, _e in histories["ours"]) == [
        ("1111", "", "PLANNED"),
        ("1111", PARTITIONS[0], "SUCCEEDED"),
        ("2222", "", "PLANNED"),
        ("2222", PARTITIONS[1], "FAILED"),
        ("2222", PARTITIONS[2], "SUCCEEDED"),
    ]
