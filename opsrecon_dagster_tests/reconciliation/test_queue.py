"""Runs waiting in Dagster's run queue: alive past the queued threshold, decided by their own
job once they run, failed with a queue reason only past the queue-wait limit (both DBs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import dagster as dg
import pytest

from opsrecon_dagster import run_queue
from opsrecon_dagster.launch import in_process_job
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster_tests.reconciliation.conftest import World

INV = OperationType.INVENTORY_SYNC


@dataclass(frozen=True)
class Queued:
    world: World
    run_id: int
    dagster_run_id: str
    job: dg.JobDefinition  # on the test's database, as the queue will run it


@pytest.fixture
def queued(world: World, monkeypatch: pytest.MonkeyPatch) -> Queued:
    """An inventory run whose Dagster run waits in the queue (the packaged fixture tenants),
    and its job on the test's database."""
    monkeypatch.delenv("OPSRECON_FIXTURE_PATH", raising=False)
    job = in_process_job(world.app, "inventory_sync")
    scope = world.scope("contoso")
    world.instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
    run_id = world.start(INV, scope)
    dagster_run_id = run_queue.enqueue(
        world.app,
        world.instance,
        job,
        run_id,
        scope.partition_key,
    )
    return Queued(world, run_id, dagster_run_id, job)


def test_queued_run_is_alive_past_the_queued_threshold_then_its_job_decides(
    queued: Queued,
) -> None:
    world, run_id, dagster_run_id = queued.world, queued.run_id, queued.dagster_run_id
    row = world.app.runs.get(run_id)
    assert (row.status, row.dagster_run_id) == ("queued", dagster_run_id)  # linked at submission
    stored = world.instance.get_run_by_id(dagster_run_id)
    assert stored is not None
    assert stored.status is dg.DagsterRunStatus.QUEUED
    threshold = world.app.catalog.get(INV).queued_stale_after
    for later in (threshold + timedelta(minutes=1), timedelta(hours=5)):
        results = world.reconcile(later=later)  # the stale scan selects it, and waits
        assert [(r.run_id, r.verdict.outcome, r.verdict.reason_code) for r in results] == [
            (run_id, None, "run_waiting_in_queue")
        ]
    assert world.app.runs.get(run_id).status == "queued"
    assert run_queue.dequeue(world.instance, queued.job, dagster_run_id) == ("SUCCESS")
    row = world.app.runs.get(run_id)
    assert (row.outcome, row.reason_code) == ("succeeded", "inventory_all_types_covered")
    audit = world.app.runs.audit_trail(run_id)
    assert [(a.action, a.actor) for a in audit][-1] == ("run.completed", "job")


def test_queue_wait_past_its_limit_fails_with_a_queue_reason(
    queued: Queued,
) -> None:
    world, run_id, dagster_run_id = queued.world, queued.run_id, queued.dagster_run_id
    wait = world.app.catalog.get(INV).queue_wait_after
    [result] = world.reconcile(later=wait + timedelta(minutes=1))
    assert world.decided(run_id) == ("failed", "dagster_queue_wait_exceeded")
    assert result.verdict.evidence.dagster_run_status == "QUEUED"
    # If the queue releases it afterwards, the worker refuses the final row.
    status = run_queue.dequeue(world.instance, queued.job, dagster_run_id)
    assert status == "FAILURE"
    assert world.decided(run_id) == ("failed", "dagster_queue_wait_exceeded")
