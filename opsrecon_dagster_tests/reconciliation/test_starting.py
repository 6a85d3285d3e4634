"""A Dagster run stuck ``STARTING`` (launched, never started: a pod that never schedules) is
failed past Dagster's start timeout, read from the instance's run monitoring settings, with
its own reason, correctable by a late report; ``QUEUED`` keeps the queue-wait limit
(test_queue.py). Real Dagster run records on real instances, explicit clocks, both DBs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType

from opsrecon_dagster import run_queue
from opsrecon_dagster.app import AppContext
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.instance.view import InstanceDagsterView
from opsrecon_dagster.launch import in_process_job
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunContext
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.providers.fixture import FixtureTenantProvider
from opsrecon_dagster.reconciliation.reconciler import Reconciler, ReconcileResult
from opsrecon_dagster_tests.conftest import decide
from opsrecon_dagster_tests.reconciliation.conftest import World

INV = OperationType.INVENTORY_SYNC
REASON = "dagster_run_start_timed_out"


@dataclass(frozen=True)
class Starting:
    world: World
    run_id: int
    dagster_run_id: str
    launched_at: datetime  # the STARTING record's last update (its launch)


def _starting(world: World) -> Starting:
    """An inventory run submitted through the run queue, then launched (``RUN_STARTING``)
    by a launcher whose worker never comes up: the row stays queued."""
    job = in_process_job(world.app, "inventory_sync")
    scope = world.scope("contoso")
    world.instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
    run_id = world.start(INV, scope)
    dagster_run_id = run_queue.enqueue(world.app, world.instance, job, run_id, scope.partition_key)
    world.instance.report_dagster_event(
        DagsterEvent(event_type_value=DagsterEventType.RUN_STARTING.value, job_name=job.name),
        run_id=dagster_run_id,
    )
    [record] = world.instance.get_run_records(dg.RunsFilter(run_ids=[dagster_run_id]))
    assert record.dagster_run.status is dg.DagsterRunStatus.STARTING
    launched = record.update_timestamp
    launched = launched if launched.tzinfo else launched.replace(tzinfo=UTC)
    return Starting(world, run_id, dagster_run_id, launched)


def _reconcile(
    world: World, at: datetime, run_ids: list[int] | None = None
) -> list[ReconcileResult]:
    """One reconciliation with its clock at ``at`` (the stale scan, or exactly ``run_ids``)."""
    view = InstanceDagsterView(world.instance)
    return Reconciler(world.app.sessions, world.app.runs, view, clock=lambda: at).reconcile(
        run_ids=run_ids
    )


@pytest.fixture(autouse=True)
def _packaged_tenants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSRECON_FIXTURE_PATH", raising=False)


def test_starting_past_the_default_start_timeout_fails_with_its_own_reason(world: World) -> None:
    """Dagster's default start timeout (180 s; this instance sets none), at its boundary;
    then a late report with the run's own proof corrects the decision once."""
    assert world.instance.run_monitoring_start_timeout_seconds == 180
    s = _starting(world)
    [waiting] = _reconcile(world, s.launched_at + timedelta(seconds=170), [s.run_id])
    assert (waiting.verdict.outcome, waiting.verdict.reason_code) == (None, "run_waiting_in_queue")
    assert world.app.runs.get(s.run_id).status == "queued"

    [result] = _reconcile(world, s.launched_at + timedelta(seconds=181), [s.run_id])
    assert world.decided(s.run_id) == ("failed", REASON)
    assert result.verdict.evidence.dagster_run_status == "STARTING"
    assert result.verdict.evidence.dagster_run_id == s.dagster_run_id

    decide(world.app, s.run_id, RunOutcome.SUCCEEDED, "inventory_all_types_covered")
    run = world.app.runs.get(s.run_id)
    assert (run.outcome, run.reason_code) == ("succeeded", "inventory_all_types_covered")
    ctx = RunContext.load(run.context)
    assert [d.reason_code for d in ctx.previous_decisions] == [REASON]
    assert [a.action for a in world.app.runs.audit_trail(s.run_id)][-1] == "run.corrected"


def test_the_stale_scan_fails_a_starting_run_where_a_queued_one_waits(world: World) -> None:
    """At the queued threshold (the first look of the stale scan) a STARTING run is failed,
    while a QUEUED one keeps waiting for the queue-wait limit."""
    s = _starting(world)
    job = in_process_job(world.app, "inventory_sync")
    scope = world.scope("fabrikam")
    world.instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
    queued = world.start(INV, scope)
    run_queue.enqueue(world.app, world.instance, job, queued, scope.partition_key)
    threshold = world.app.catalog.get(INV).queued_stale_after
    results = _reconcile(world, datetime.now(UTC) + threshold + timedelta(minutes=1))
    assert {r.run_id: (r.verdict.outcome, r.verdict.reason_code) for r in results} == {
        s.run_id: ("failed", REASON),
        queued: (None, "run_waiting_in_queue"),
    }


@pytest.fixture
def patient(app: AppContext, provider: FixtureTenantProvider) -> Iterator[World]:
    """A world on an instance whose dagster.yaml sets a start timeout of one hour."""
    overrides = {"run_monitoring": {"enabled": True, "start_timeout_seconds": 3600}}
    with dg.instance_for_test(overrides=overrides) as instance:
        yield World(app, instance, provider)


def test_the_start_timeout_is_read_from_the_instance(patient: World) -> None:
    """With ``start_timeout_seconds: 3600`` the run waits past 180 s and past the queued
    threshold, and is failed by the scan once the hour is over."""
    s = _starting(patient)
    first = s.launched_at + patient.app.catalog.get(INV).queued_stale_after + timedelta(seconds=1)
    assert [r.verdict.reason_code for r in _reconcile(patient, first)] == ["run_waiting_in_queue"]
    later = _reconcile(patient, s.launched_at + timedelta(minutes=59))
    assert [r.verdict.reason_code for r in later] == ["run_waiting_in_queue"]
    [result] = _reconcile(patient, s.launched_at + timedelta(minutes=61))
    assert (result.run_id, result.verdict.reason_code) == (s.run_id, REASON)
    assert patient.decided(s.run_id) == ("failed", REASON)
