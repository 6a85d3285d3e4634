"""The worker guard, through real materializations: a run that is not this job's, not this
partition's, or already final is refused before any provider call, and nothing is written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest
from sqlalchemy import func, select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.assets.artifacts import backup_sets, inventory_items
from opsrecon_dagster.db.models import BackupSet, InventoryCoverage
from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.instance.view import InstanceDagsterView
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Decision
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.providers.base import TenantProvider
from opsrecon_dagster.providers.fixture import FixtureTenantProvider
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG
from opsrecon_dagster.reconciliation.reconciler import Reconciler
from opsrecon_dagster.resources import AppDatabaseResource, ProviderResource
from opsrecon_dagster_tests.conftest import Scope, add_schedule, make_scope

# The one provider every materialization in a test gets, so its call counter is observable.
SHARED: list[FixtureTenantProvider] = []


class SharedProvider(ProviderResource):
    def get_provider(self) -> TenantProvider:
        return SHARED[0]


@pytest.fixture
def provider() -> Iterator[FixtureTenantProvider]:
    SHARED[:] = [FixtureTenantProvider()]
    yield SHARED[0]
    SHARED.clear()


def launch(
    app: AppContext,
    instance: dg.DagsterInstance,
    asset: dg.AssetsDefinition,
    partition: str,
    run_id: int,
) -> tuple[bool, str]:
    """Materialize ``asset`` on ``partition`` tagged with ``run_id``; (success, failure text)."""
    name = ENVIRONMENTS.name or ""
    if not instance.has_dynamic_partition(name, partition):
        instance.add_dynamic_partitions(name, [partition])
    result = dg.materialize(
        [asset],
        partition_key=partition,
        instance=instance,
        tags={RUN_TAG: str(run_id)},
        raise_on_error=False,
        resources={
            "app_db": AppDatabaseResource(database_url=app.url.render_as_string(False)),
            "provider": SharedProvider(),
        },
    )
    failures = [e for e in result.all_events if e.is_step_failure]
    message = failures[0].step_failure_data.error.message if failures else ""  # type: ignore[union-attr]
    return result.success, message


def reconcile_now(
    app: AppContext, instance: dg.DagsterInstance, run_id: int
) -> tuple[str | None, str]:
    """What the run-end sensors would decide now: the refused Dagster run (failed, tagged
    with the row's id) is not the row's own run and decides nothing."""
    [result] = Reconciler(app.sessions, app.runs, InstanceDagsterView(instance)).reconcile(
        run_ids=[run_id]
    )
    outcome = result.verdict.outcome
    return (outcome.value if outcome else None), result.verdict.reason_code


def rows(app: AppContext, model: type) -> int:
    with app.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def start(app: AppContext, scope: Scope, op_type: OperationType, **inputs: object) -> int:
    from opsrecon_dagster.operations.context import RunInputs

    return app.runs.start(
        op_type,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs.model_validate(inputs),
    ).run.id


def test_run_for_another_environment_is_refused_on_this_partition(
    app: AppContext, instance: dg.DagsterInstance, provider: FixtureTenantProvider
) -> None:
    mine = make_scope(app, "acme", "contoso")
    other = make_scope(app, "acme", "northwind")
    run_id = start(app, mine, OperationType.INVENTORY_SYNC)
    ok, message = launch(app, instance, inventory_items, other.partition_key, run_id)
    assert not ok
    assert f"operation run {run_id} belongs to partition acme.contoso, not acme.northwind" in (
        message
    )
    assert sum(provider.calls.values()) == 0
    assert rows(app, InventoryCoverage) == 0
    run = app.runs.get(run_id)
    assert (run.status, run.dagster_run_id) == ("queued", None)  # untouched: not its worker
    assert reconcile_now(app, instance, run_id) == (None, "run_alive")


def test_run_of_another_type_is_refused_by_this_job(
    app: AppContext, instance: dg.DagsterInstance, provider: FixtureTenantProvider
) -> None:
    scope = make_scope(app, "acme", "contoso")
    add_schedule(app, scope)
    run_id = start(app, scope, OperationType.INVENTORY_SYNC)
    ok, message = launch(app, instance, backup_sets, scope.partition_key, run_id)
    assert not ok
    assert f"operation run {run_id} is a inventory.sync run, not backup.schedule.execute" in (
        message
    )
    assert sum(provider.calls.values()) == 0
    assert rows(app, BackupSet) == 0
    assert app.runs.get(run_id).status == "queued"
    assert reconcile_now(app, instance, run_id) == (None, "run_alive")


def test_final_row_is_not_worked_on(
    app: AppContext, instance: dg.DagsterInstance, provider: FixtureTenantProvider
) -> None:
    scope = make_scope(app, "acme", "contoso")
    run_id = start(app, scope, OperationType.INVENTORY_SYNC)
    app.runs.reconcile(
        run_id,
        Decision(
            outcome=RunOutcome.FAILED,
            reason_code="queued_never_started",
            adapter="inventory_sync",
            decided_by=Actor.RECONCILER,
            decided_at=datetime.now(UTC),
        ),
    )
    ok, message = launch(app, instance, inventory_items, scope.partition_key, run_id)
    assert not ok
    assert (
        f"operation run {run_id} is already final: failed (queued_never_started); not worked on"
        in message
    )
    assert sum(provider.calls.values()) == 0
    assert rows(app, InventoryCoverage) == 0
    run = app.runs.get(run_id)
    assert (run.outcome, run.reason_code) == ("failed", "queued_never_started")


def test_the_same_row_in_the_right_place_is_worked_on(
    app: AppContext, instance: dg.DagsterInstance, provider: FixtureTenantProvider
) -> None:
    """The control case: the guard lets the run's own job and partition through."""
    scope = make_scope(app, "acme", "contoso")
    run_id = start(app, scope, OperationType.INVENTORY_SYNC)
    ok, _message = launch(app, instance, inventory_items, scope.partition_key, run_id)
    assert ok
    assert provider.calls[(scope.partition_key, "list_policies")] == 3
    assert app.runs.get(run_id).outcome == "succeeded"


def test_consent_missing_is_blocked_before_any_provider_call(
    app: AppContext, instance: dg.DagsterInstance, provider: FixtureTenantProvider
) -> None:
    """The recorded precondition check blocks the run without asking the provider."""
    from opsrecon_dagster.enums import Readiness
    from opsrecon_dagster.operations.context import RunContext

    scope = make_scope(app, "acme", "fabrikam", readiness=Readiness.CONSENT_MISSING)
    run_id = start(app, scope, OperationType.INVENTORY_SYNC)
    ok, message = launch(app, instance, inventory_items, scope.partition_key, run_id)
    assert not ok  # a blocked run fails its step: the partition is not shown green
    assert "Failure: Blocked: Admin consent for the environment is missing." in message
    assert f"(operation run {run_id}, decided by job)" in message
    assert sum(provider.calls.values()) == 0
    run = app.runs.get(run_id)
    assert (run.outcome, run.reason_code) == ("blocked", "environment_consent_missing")
    check = RunContext.load(run.context).precondition
    assert check is not None
    assert check.blocker == "environment_consent_missing"
