"""The reconciliation sensors evaluated through ``build_sensor_context`` on a real instance."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import update

from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.jobs import JOBS
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.resources import AppDatabaseResource, ClockResource
from opsrecon_dagster.sensors.reconciliation import (
    RUN_END_SENSORS,
    TickCursor,
    reconciliation_sensor,
)
from opsrecon_dagster_tests.reconciliation.conftest import World, failing_job, ok_job

INV = OperationType.INVENTORY_SYNC


def resources(world: World, later: timedelta = timedelta(0)) -> dict[str, object]:
    """The sensors' resources, with a clock set ``later`` than now (time passing)."""
    return {
        "app_db": AppDatabaseResource(database_url=world.app.url.render_as_string(False)),
        "clock": ClockResource.at(datetime.now(UTC) + later),
    }


LATER = timedelta(hours=3)  # the workers stopped reporting long ago


def _events_of(world: World) -> list[dg.AssetMaterialization | dg.AssetObservation]:
    """The runless asset events in storage for ``inventory_items``, oldest first."""
    key = dg.AssetKey("inventory_items")
    found: list[tuple[int, dg.AssetMaterialization | dg.AssetObservation]] = []
    for record in world.instance.fetch_materializations(key, limit=100).records:
        assert record.asset_materialization is not None
        found.append((record.storage_id, record.asset_materialization))
    for record in world.instance.fetch_observations(key, limit=100).records:
        assert record.asset_observation is not None
        found.append((record.storage_id, record.asset_observation))
    return [event for _id, event in sorted(found, key=lambda pair: pair[0])]


def _reported(world: World) -> list[int]:
    ids = [e.metadata["operation_run_id"].value for e in _events_of(world)]
    return sorted(i for i in ids if isinstance(i, int))


def test_a_tick_drains_the_backlog_in_batches_and_reports_every_decision(
    world: World, monkeypatch
) -> None:
    import opsrecon_dagster.sensors.reconciliation as module

    monkeypatch.setattr(module, "BATCH_SIZE", 3)
    scope = world.scope("full")
    run_ids = []
    for hour in range(5):
        run_id = world.start(INV, scope, scheduled_for=datetime(2026, 1, 1, hour, tzinfo=UTC))
        world.running(run_id)
        world.work_then_die("inventory_items", run_id)
        run_ids.append(run_id)
    first = reconciliation_sensor(
        dg.build_sensor_context(instance=world.instance, resources=resources(world, LATER))
    )
    assert isinstance(first, dg.SensorResult)
    # Two batches of at most three in one tick; the events are written by the tick itself.
    assert first.asset_events == []
    assert json.loads(first.cursor or "")["decided"] == 5
    # What the tick history shows for it: what it decided, not an empty result.
    assert first.skip_reason is not None
    assert first.skip_reason.skip_message == (
        f"decided 5 of 5 due operation runs (runs {', '.join(map(str, run_ids))}), "
        "no decision yet 0, shown in Dagster 5"
    )
    assert {world.decided(r)[0] for r in run_ids} == {"succeeded"}
    events = _events_of(world)
    # Older runs of the partition, superseded by the newest one, stay off the partition:
    # their decisions are on their own Dagster runs and in the audit trail.
    assert _reported(world) == run_ids[-1:]
    for older in run_ids[:-1]:
        [dagster_run] = world.instance.get_runs(
            filters=dg.RunsFilter(run_ids=[world.app.runs.get(older).dagster_run_id or ""])
        )
        assert dagster_run.tags["opsrecon/reason"] == "inventory_all_types_covered"
    # The newest worker died after committing its artifacts and before reporting them: the
    # reconciler materializes the partition with the proof's metadata.
    [newest] = [e for e in events if e.metadata["operation_run_id"].value == run_ids[-1]]
    assert isinstance(newest, dg.AssetMaterialization)
    assert newest.metadata["decided_by"].value == "reconciler"
    assert newest.metadata["types_succeeded"].value == 3
    with world.app.sessions() as session:
        assert outbox.count(session) == 0
    again = reconciliation_sensor(
        dg.build_sensor_context(
            instance=world.instance, cursor=first.cursor, resources=resources(world, LATER)
        )
    )
    assert isinstance(again, dg.SensorResult)
    assert again.skip_reason is not None
    assert again.skip_reason.skip_message == "no stale operation runs"
    assert _reported(world) == run_ids[-1:]  # nothing repeated


def test_decisions_whose_events_were_not_written_are_reported_by_the_next_tick(
    world: World, monkeypatch
) -> None:
    """Events are written after the decisions commit: when writing them fails (or the
    process dies there), the decisions stay in the outbox and the next tick reports them."""
    run_ids = [world.start(INV, world.scope(f"env-{t}"), policy_types=[t]) for t in "abc"]

    def storage_down(_instance: object, _events: object) -> None:
        raise ConnectionError("event log storage unavailable")

    monkeypatch.setattr("opsrecon_dagster.instance.decisions.store_events", storage_down)
    with pytest.raises(Exception, match="ConnectionError"):
        reconciliation_sensor(
            dg.build_sensor_context(instance=world.instance, resources=resources(world, LATER))
        )
    assert {world.decided(r)[1] for r in run_ids} == {"queued_never_started"}
    assert _reported(world) == []
    with world.app.sessions() as session:
        assert outbox.count(session) == 3
    monkeypatch.undo()
    reconciliation_sensor(
        dg.build_sensor_context(instance=world.instance, resources=resources(world, LATER))
    )
    assert _reported(world) == run_ids
    with world.app.sessions() as session:
        assert outbox.count(session) == 0


def test_bad_rows_do_not_fail_the_tick(world: World) -> None:
    scope = world.scope("full")
    broken = world.start(INV, scope)
    unknown = world.start(INV, scope, policy_types=["x"])
    homeless = world.start(INV, scope, policy_types=["y"])
    with world.app.engine.begin() as conn:  # damage done by something outside the product
        conn.execute(
            update(OperationRun).where(OperationRun.id == broken).values(context={"bogus": 1})
        )
        conn.execute(
            update(OperationRun).where(OperationRun.id == unknown).values(type="legacy.thing")
        )
        conn.execute(
            update(OperationRun)
            .where(OperationRun.id == homeless)
            .values(managed_environment_id=None)
        )
    result = reconciliation_sensor(
        dg.build_sensor_context(instance=world.instance, resources=resources(world, LATER))
    )
    assert isinstance(result, dg.SensorResult)
    assert world.decided(broken) == ("failed", "run_context_invalid")
    assert world.decided(unknown) == ("failed", "unsupported_type_stale")
    assert world.decided(homeless) == ("failed", "run_scope_invalid")


def _run_end(status: str) -> dg.RunStatusSensorDefinition:
    [sensor] = [s for s in RUN_END_SENSORS if s.name == f"reconcile_on_run_{status}"]
    return sensor


def test_run_status_sensor_reacts_to_failed_and_canceled_tagged_runs(world: World) -> None:
    scope = world.scope("full")
    failed_id = world.start(INV, scope, policy_types=["compliancePolicies"])
    canceled_id = world.start(INV, scope, policy_types=["deviceConfigurations"])
    failed_run = failing_job.execute_in_process(
        instance=world.instance,
        raise_on_error=False,
        tags={"opsrecon/operation_run_id": str(failed_id)},
    ).dagster_run
    world.app.runs.mark_running(failed_id, failed_run.run_id)
    canceled_run = world.instance.create_run_for_job(
        ok_job, tags={"opsrecon/operation_run_id": str(canceled_id)}
    )
    world.app.runs.mark_running(canceled_id, canceled_run.run_id)
    world.instance.report_run_canceled(canceled_run)

    for status, run in (("failure", failed_run), ("canceled", canceled_run)):
        stored = world.instance.get_run_by_id(run.run_id)
        assert stored is not None
        event = world.instance.all_logs(run.run_id)[-1]
        ctx = dg.build_run_status_sensor_context(
            sensor_name=f"reconcile_on_run_{status}",
            dagster_instance=world.instance,
            dagster_run=stored,
            dagster_event=event.dagster_event,  # type: ignore[arg-type]
            resources=resources(world),
        )
        _run_end(status)(ctx)
    assert world.decided(failed_id) == ("failed", "dagster_run_failed_without_proof")
    assert world.decided(canceled_id) == ("failed", "dagster_run_canceled_without_proof")
    # The newest run's decision shows up as an observation on the asset partition; the
    # older one, superseded by it, on its own Dagster run.
    records = world.instance.fetch_observations(dg.AssetKey("inventory_items"), limit=10).records
    observed = {
        r.asset_observation.metadata["operation_run_id"].value  # type: ignore[union-attr]
        for r in records
    }
    assert observed == {canceled_id}
    failed_stored = world.instance.get_run_by_id(failed_run.run_id)
    assert failed_stored is not None
    assert failed_stored.tags["opsrecon/reason"] == "dagster_run_failed_without_proof"


def test_decided_dagster_run_that_cannot_end_itself_is_ended_with_the_decision(
    world: World,
) -> None:
    """A stale run whose Dagster run never ended (its worker is gone): the decision goes on
    the Dagster run as tags, and the run is marked failed with a message naming it."""
    scope = world.scope("full")
    # An older run of the partition whose Dagster run already ended; then the newest run.
    ended = world.start(INV, scope, policy_types=["compliancePolicies"])
    ended_dagster_id = world.running(ended, "SUCCESS")
    run_id = world.start(INV, scope)
    dagster_run_id = world.running(run_id, "NOT_STARTED")
    result = reconciliation_sensor(
        dg.build_sensor_context(instance=world.instance, resources=resources(world, LATER))
    )
    assert isinstance(result, dg.SensorResult)
    assert world.decided(run_id) == ("failed", "stale_without_proof")
    stored = world.instance.get_run_by_id(dagster_run_id)
    assert stored is not None
    assert stored.status is dg.DagsterRunStatus.FAILURE
    assert stored.tags["opsrecon/outcome"] == "failed"
    assert stored.tags["opsrecon/reason"] == "stale_without_proof"
    messages = [e.message for e in world.instance.all_logs(dagster_run_id)]
    assert any(
        m.startswith("Failed: ")
        and f"[stale_without_proof] (operation run {run_id}, decided by reconciler; it never" in m
        for m in messages
    )
    # The partition's proof check is evaluated on that run: an error naming the reason.
    [evaluation] = [
        e.dagster_event.event_specific_data
        for e in world.instance.all_logs(dagster_run_id)
        if e.dagster_event is not None
        and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    assert (evaluation.check_name, evaluation.partition, evaluation.passed) == (
        "proof",
        scope.partition_key,
        False,
    )
    assert evaluation.severity is dg.AssetCheckSeverity.ERROR
    assert "[stale_without_proof]" in (evaluation.description or "")
    assert evaluation.metadata["decided_by"].value == "reconciler"
    # A Dagster run that already ended keeps its status and only gets the decision's tags
    # (and, superseded by the newer run, no check evaluation on the partition).
    other = world.instance.get_run_by_id(ended_dagster_id)
    assert other is not None
    assert other.status is dg.DagsterRunStatus.SUCCESS
    assert other.tags["opsrecon/reason"] == "dagster_success_without_proof"
    assert not [
        e
        for e in world.instance.all_logs(ended_dagster_id)
        if e.dagster_event is not None
        and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_observations_speak_the_configured_language(world: World) -> None:
    scope = world.scope("full")
    run_id = world.start(INV, scope)
    reconciliation_sensor(
        dg.build_sensor_context(
            instance=world.instance,
            resources={
                **resources(world, LATER),
                "app_db": AppDatabaseResource(
                    database_url=world.app.url.render_as_string(False), language="de"
                ),
            },
        )
    )
    [event] = _events_of(world)
    assert event.metadata["operation_run_id"].value == run_id
    assert event.description == (
        "Fehlgeschlagen: Der Lauf wurde eingereiht, aber nie gestartet. [queued_never_started]"
    )
    assert str(event.metadata["next_step"].value).startswith("Der Start erreichte nie einen Worker")


def _partition_status(world: World, asset: str) -> tuple[set[str], set[str]]:
    """(failed, materialized) partitions as the UI computes them (Dagster's status cache)."""
    from dagster._core.storage.partition_status_cache import (
        get_and_update_asset_status_cache_value,
    )

    value = get_and_update_asset_status_cache_value(
        world.instance, dg.AssetKey(asset), ENVIRONMENTS
    )
    assert value is not None
    failed = value.deserialize_failed_partition_subsets(ENVIRONMENTS)
    done = value.deserialize_materialized_partition_subsets(ENVIRONMENTS)
    return set(failed.get_partition_keys()), set(done.get_partition_keys())


def test_a_never_launched_run_leaves_its_partition_failed_not_green(world: World) -> None:
    """A run that never had a Dagster run gets one, failed with the decision's message, so
    the partition's latest attempt is the failure and not an older success."""
    scope = world.scope("full")
    world.instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
    world.instance.report_runless_asset_event(
        dg.AssetMaterialization("inventory_items", partition=scope.partition_key)
    )
    assert _partition_status(world, "inventory_items") == (set(), {scope.partition_key})
    run_id = world.start(INV, scope)

    def tick() -> None:
        reconciliation_sensor(
            dg.build_sensor_context(
                instance=world.instance, resources=resources(world, LATER), definitions=defs
            )
        )

    tick()
    assert world.decided(run_id) == ("failed", "queued_never_started")
    [record] = world.instance.get_run_records(
        dg.RunsFilter(tags={"opsrecon/operation_run_id": str(run_id)})
    )
    assert record.dagster_run.status is dg.DagsterRunStatus.FAILURE
    assert record.dagster_run.tags["opsrecon/reason"] == "queued_never_started"
    failure = world.instance.all_logs(record.dagster_run.run_id)[-1]
    assert "never started" in (failure.message or "")
    failed, _ = _partition_status(world, "inventory_items")
    assert failed == {scope.partition_key}
    tick()  # the decision reported again (no saved cursor): still one Dagster run
    assert (
        len(
            world.instance.get_run_records(
                dg.RunsFilter(tags={"opsrecon/operation_run_id": str(run_id)})
            )
        )
        == 1
    )


def test_a_thresholds_change_makes_every_open_row_due_once(world: World) -> None:
    """Due times stored under other thresholds (a configuration change) are recomputed: a
    tick whose cursor names other thresholds looks at every open row, while a tick with
    the current ones leaves the stored due times alone."""
    scope = world.scope("contoso")
    run_id = world.start(OperationType.POLICY_SYNC, scope)
    far = datetime.now(UTC) + timedelta(days=30)  # as stored under a 30-day threshold
    with world.app.engine.begin() as conn:
        conn.execute(update(OperationRun).where(OperationRun.id == run_id).values(stale_at=far))
    res = resources(world, LATER)
    app_db = res["app_db"]
    assert isinstance(app_db, AppDatabaseResource)
    with app_db.opened() as app:
        current = app.runs.rule.digest

    def tick(thresholds: str) -> dg.SensorResult:
        cursor = TickCursor(thresholds=thresholds).model_dump_json()
        result = reconciliation_sensor(
            dg.build_sensor_context(instance=world.instance, cursor=cursor, resources=res)
        )
        assert isinstance(result, dg.SensorResult)
        return result

    tick(current)
    assert world.app.runs.get(run_id).status == "queued"  # not due by its stored time
    result = tick("thresholds-before-the-change")
    assert world.decided(run_id) == ("failed", "unsupported_type_stale")
    assert TickCursor.parse(result.cursor).thresholds == current


def test_decisions_are_stamped_with_the_real_time_not_the_clock(world: World) -> None:
    """The sensor decides "as of" three hours later (its clock); the decision, the row's
    completion, its audit row and its Dagster event are stamped with when they were
    really written, never later than the wall clock."""
    from opsrecon_dagster.operations.context import RunContext

    run_id = world.start(INV, world.scope("full"))
    before = datetime.now(UTC)
    reconciliation_sensor(
        dg.build_sensor_context(instance=world.instance, resources=resources(world, LATER))
    )
    after = datetime.now(UTC)
    run = world.app.runs.get(run_id)
    decision = RunContext.load(run.context).decision
    assert decision is not None and run.completed_at is not None
    assert before <= decision.decided_at <= after
    assert before <= run.completed_at <= after
    assert all(a.created_at <= after for a in world.app.runs.audit_trail(run_id))
    [record] = world.instance.fetch_observations(dg.AssetKey("inventory_items"), limit=10).records
    assert record.timestamp <= after.timestamp()


def test_run_end_sensor_finds_an_untagged_runs_row_by_its_dagster_run_id(world: World) -> None:
    """A run launched from the UI or GraphQL carries no operation run tag: its first step
    created the row and linked the Dagster run. When that run fails, the run-end sensor
    finds the row by the Dagster run id and decides it at once."""
    run_id = world.start(INV, world.scope("full"))
    failed = failing_job.execute_in_process(instance=world.instance, raise_on_error=False)
    assert "opsrecon/operation_run_id" not in failed.dagster_run.tags
    world.app.runs.mark_running(run_id, failed.run_id)
    stored = world.instance.get_run_by_id(failed.run_id)
    assert stored is not None
    ctx = dg.build_run_status_sensor_context(
        sensor_name="reconcile_on_run_failure",
        dagster_instance=world.instance,
        dagster_run=stored,
        dagster_event=world.instance.all_logs(failed.run_id)[-1].dagster_event,  # type: ignore[arg-type]
        resources=resources(world),
    )
    said = _run_end("failure")(ctx)
    assert world.decided(run_id) == ("failed", "dagster_run_failed_without_proof")
    assert isinstance(said, dg.SkipReason)
    assert said.skip_message == (
        f"operation run {run_id}: failed (dagster_run_failed_without_proof)"
    )


def test_every_launch_of_a_partition_gets_its_queue_lanes() -> None:
    """The family jobs' partitioned config gives a partition's runs their lane tags (the
    UI's launchpad, backfills and run requests apply it)."""
    for name in (j.name for j in JOBS):
        job = defs.resolve_job_def(name)
        assert job.partitioned_config is not None
        assert job.partitioned_config.get_tags_for_partition_key("acme.contoso") == {
            "opsrecon/workspace": "acme",
            "opsrecon/environment": "acme.contoso",
            "dagster/partition": "acme.contoso",
        }
