"""The four assets materialized for real (``dagster.materialize``) with the fixture provider.

Each test checks the three places proof must show up: the domain rows, the materialization
metadata and asset-check result, and the operation run row's outcome.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.assets.artifacts import ARTIFACT_ASSETS
from opsrecon_dagster.db.models import (
    BackupItem,
    BackupSet,
    BaselineGap,
    BaselineSnapshot,
    EnvironmentReview,
    InventoryCoverage,
    InventoryItem,
    OperationRun,
)
from opsrecon_dagster.enums import Readiness
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunContext, RunInputs
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG
from opsrecon_dagster.resources import AppDatabaseResource, ProviderResource
from opsrecon_dagster_tests.conftest import ALL_TYPES, Scope, add_profile, add_schedule, make_scope

TYPES = ALL_TYPES

FIXTURE = {
    "seed": 11,
    "page_size": 2,
    "default_policy_types": {
        "deviceConfigurations": 4,
        "compliancePolicies": 3,
        "appProtectionPolicies": 2,
    },
    "environments": {
        "acme.partial": {
            "faults": {"throttled_types": ["appProtectionPolicies"], "failing_items": 1},
            "duplicate_display_names": {"deviceConfigurations": 1},
        },
        "acme.noconsent": {"faults": {"consent_missing": True}},
    },
}


@pytest.fixture
def fixture_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(FIXTURE))
    return path


def materialize(
    app: AppContext,
    instance: dg.DagsterInstance,
    fixture_file: Path,
    asset: Any,
    partition: str,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInJobResult:
    if not instance.has_dynamic_partition(ENVIRONMENTS.name or "", partition):
        instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [partition])
    return dg.materialize(
        [asset],
        partition_key=partition,
        instance=instance,
        tags=tags or {},
        raise_on_error=False,  # blocked and failed runs fail their step (tests look at both)
        resources={
            "app_db": AppDatabaseResource(database_url=app.url.render_as_string(False)),
            "provider": ProviderResource(fixture_path=str(fixture_file)),
        },
    )


def materialization_metadata(result: dg.ExecuteInJobResult) -> dict[str, Any]:
    [event] = result.get_asset_materialization_events()
    mat = event.step_materialization_data.materialization
    return {k: v.value for k, v in mat.metadata.items()}


def check_result(result: dg.ExecuteInJobResult) -> str:
    """The proof check as the UI presents it: passed (partial or not), warning or error."""
    [evaluation] = result.get_asset_check_evaluations()
    if evaluation.passed:
        partial = evaluation.metadata["outcome"].value == "partially_succeeded"
        return "passed: partial" if partial else "passed"
    return "warning" if evaluation.severity is dg.AssetCheckSeverity.WARN else "error"


def assert_failed_step_without_materialization(result: dg.ExecuteInJobResult, why: str) -> None:
    """A blocked or failed run: no materialization (the partition is not shown green), the
    step failed with the decision in its message."""
    assert not result.success
    assert result.get_asset_materialization_events() == []
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert why in failure.step_failure_data.error.message


def only_run(app: AppContext, op_type: str) -> OperationRun:
    with app.sessions() as s:
        [run] = s.scalars(select(OperationRun).where(OperationRun.type == op_type)).all()
        return run


# ------------------------------------------------------------------------------ inventory
def test_inventory_complete(app, instance, fixture_file) -> None:
    scope = make_scope(app, "acme", "full")
    result = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[0], scope.partition_key)
    assert result.success
    run = only_run(app, "inventory.sync")
    assert (run.status, run.outcome, run.reason_code) == (
        "completed",
        "succeeded",
        "inventory_all_types_covered",
    )
    assert run.dagster_run_id == result.run_id
    meta = materialization_metadata(result)
    assert meta["operation_run_id"] == run.id
    assert meta["outcome"] == "succeeded"
    assert meta["types_succeeded"] == 3
    assert meta["items_seen"] == 9
    assert check_result(result) == "passed"
    with app.sessions() as s:
        items = s.scalars(select(InventoryItem)).all()
        coverage = s.scalars(select(InventoryCoverage)).all()
    assert len(items) == 9
    assert {i.last_seen_operation_run_id for i in items} == {run.id}
    assert sorted((c.policy_type, c.status) for c in coverage) == sorted(
        (t, "succeeded") for t in TYPES
    )


def test_inventory_partial_when_a_type_is_throttled(app, instance, fixture_file) -> None:
    scope = make_scope(app, "acme", "partial")
    result = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[0], scope.partition_key)
    run = only_run(app, "inventory.sync")
    assert (run.outcome, run.reason_code) == ("partially_succeeded", "inventory_partial_coverage")
    assert check_result(result) == "passed: partial"
    meta = materialization_metadata(result)
    assert (meta["types_succeeded"], meta["types_failed"]) == (2, 1)
    with app.sessions() as s:
        failed = s.scalars(
            select(InventoryCoverage).where(InventoryCoverage.status == "failed")
        ).one()
    assert (failed.policy_type, failed.reason_code) == (
        "appProtectionPolicies",
        "provider_throttled",
    )
    table = [
        [c.strip() for c in line.split("|")[1:-1]] for line in meta["coverage_table"].splitlines()
    ]
    assert ["appProtectionPolicies", "failed", "provider_throttled", "0"] in table
    assert ["compliancePolicies", "succeeded", "-", "3"] in table


def test_inventory_blocked_when_consent_missing(app, instance, fixture_file) -> None:
    scope = make_scope(app, "acme", "noconsent")
    result = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[0], scope.partition_key)
    assert_failed_step_without_materialization(result, "Blocked: ")
    run = only_run(app, "inventory.sync")
    assert (run.outcome, run.reason_code) == ("blocked", "inventory_access_missing")
    assert check_result(result) == "warning"  # blocked
    with app.sessions() as s:
        reasons = set(s.scalars(select(InventoryCoverage.reason_code)).all())
        assert s.scalars(select(InventoryItem)).all() == []
    assert reasons == {"provider_consent_missing"}


def test_tagged_run_is_used_not_duplicated(app, instance, fixture_file) -> None:
    scope = make_scope(app, "acme", "full")
    started = app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(policy_types=["compliancePolicies"]),
    )
    result = materialize(
        app,
        instance,
        fixture_file,
        ARTIFACT_ASSETS[0],
        scope.partition_key,
        tags={RUN_TAG: str(started.run.id)},
    )
    run = only_run(app, "inventory.sync")
    assert run.id == started.run.id
    assert run.outcome == "succeeded"
    assert materialization_metadata(result)["types_requested"] == 1
    assert [a.action for a in app.runs.audit_trail(run.id)] == [
        "run.queued",
        "run.running",
        "run.completed",
    ]


def test_untagged_launch_gets_a_row_linked_at_its_first_step(app, instance, fixture_file) -> None:
    """A launch from the Dagster UI carries no tag: the first step creates the row and links
    it to the Dagster run before any provider call."""
    scope = make_scope(app, "acme", "full")
    result = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[0], scope.partition_key)
    run = only_run(app, "inventory.sync")
    assert run.dagster_run_id == result.run_id
    assert RunContext.load(run.context).inputs.trigger == "dagster"
    assert [a.action for a in app.runs.audit_trail(run.id)] == [
        "run.queued",
        "run.running",
        "run.completed",
    ]


def test_scope_two_workspaces_with_same_environment_name(app, instance, fixture_file) -> None:
    a = make_scope(app, "acme", "contoso")
    b = make_scope(app, "globex", "contoso")
    materialize(app, instance, fixture_file, ARTIFACT_ASSETS[0], a.partition_key)
    materialize(app, instance, fixture_file, ARTIFACT_ASSETS[0], b.partition_key)
    with app.sessions() as s:
        runs = {r.workspace_id: r for r in s.scalars(select(OperationRun))}
        for scope in (a, b):
            items = s.scalars(
                select(InventoryItem).where(InventoryItem.workspace_id == scope.workspace_id)
            ).all()
            assert {i.managed_environment_id for i in items} == {scope.environment_id}
            assert {i.last_seen_operation_run_id for i in items} == {runs[scope.workspace_id].id}
    # Different environments get different fake tenants, so nothing is shared by accident.
    assert runs[a.workspace_id].outcome == runs[b.workspace_id].outcome == "succeeded"


# ------------------------------------------------------------------------------ baseline
def _inventory_then(app, instance, fixture_file, scope: Scope) -> None:
    materialize(app, instance, fixture_file, ARTIFACT_ASSETS[0], scope.partition_key)


def test_baseline_complete(app, instance, fixture_file) -> None:
    scope = make_scope(app, "acme", "full")
    _inventory_then(app, instance, fixture_file, scope)
    add_profile(app, scope, [{"policy_type": "compliancePolicies"}])
    result = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[1], scope.partition_key)
    run = only_run(app, "baseline.capture")
    assert (run.outcome, run.reason_code) == ("succeeded", "baseline_snapshot_complete")
    assert check_result(result) == "passed"
    meta = materialization_metadata(result)
    assert (meta["items_captured"], meta["gaps"]) == (3, 0)
    with app.sessions() as s:
        snap = s.scalars(select(BaselineSnapshot)).one()
    assert (snap.operation_run_id, snap.status) == (run.id, "complete")


def test_baseline_partial_with_classified_gaps(app, instance, fixture_file) -> None:
    scope = make_scope(app, "acme", "partial")
    _inventory_then(app, instance, fixture_file, scope)
    with app.sessions() as s:
        dup_name = s.scalars(
            select(InventoryItem.display_name)
            .where(InventoryItem.policy_type == "deviceConfigurations")
            .order_by(InventoryItem.id)
        ).first()
    add_profile(
        app,
        scope,
        [
            {"policy_type": "compliancePolicies"},  # first item fails to fetch: capture_failed
            {"policy_type": "deviceConfigurations", "display_name": dup_name},  # ambiguous
            {"policy_type": "deviceConfigurations", "display_name": "No Such Policy"},  # missing
        ],
    )
    result = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[1], scope.partition_key)
    run = only_run(app, "baseline.capture")
    assert (run.outcome, run.reason_code) == ("partially_succeeded", "baseline_snapshot_with_gaps")
    assert check_result(result) == "passed: partial"
    with app.sessions() as s:
        kinds = sorted(s.scalars(select(BaselineGap.kind)).all())
    assert kinds == ["ambiguous", "capture_failed", "missing"]
    meta = materialization_metadata(result)
    assert (meta["gaps_missing"], meta["gaps_ambiguous"], meta["gaps_capture_failed"]) == (1, 1, 1)
    assert "No Such Policy" in meta["gap_table"]


def test_baseline_blocked_without_inventory(app, instance, fixture_file) -> None:
    scope = make_scope(app, "acme", "full")
    add_profile(app, scope, [{"policy_type": "compliancePolicies"}])
    result = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[1], scope.partition_key)
    assert_failed_step_without_materialization(result, "baseline_no_usable_inventory")
    run = only_run(app, "baseline.capture")
    assert (run.outcome, run.reason_code) == ("blocked", "baseline_no_usable_inventory")
    assert check_result(result) == "warning"  # blocked
    with app.sessions() as s:
        assert s.scalars(select(BaselineSnapshot)).all() == []


# ------------------------------------------------------------------------------ backup
def test_backup_complete(app, instance, fixture_file) -> None:
    scope = make_scope(app, "acme", "full")
    add_schedule(app, scope)
    result = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[2], scope.partition_key)
    run = only_run(app, "backup.schedule.execute")
    assert (run.outcome, run.reason_code) == ("succeeded", "backup_all_items_captured")
    meta = materialization_metadata(result)
    assert (meta["items"], meta["items_captured"], meta["items_failed"]) == (9, 9, 0)
    with app.sessions() as s:
        bset = s.scalars(select(BackupSet)).one()
    assert (bset.operation_run_id, bset.status) == (run.id, "complete")


def test_backup_partial_when_items_fail(app, instance, fixture_file) -> None:
    scope = make_scope(app, "acme", "partial")
    add_schedule(app, scope)
    result = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[2], scope.partition_key)
    run = only_run(app, "backup.schedule.execute")
    assert (run.outcome, run.reason_code) == ("partially_succeeded", "backup_some_items_failed")
    assert check_result(result) == "passed: partial"
    with app.sessions() as s:
        failed = s.scalars(select(BackupItem).where(BackupItem.status == "failed")).all()
    assert len(failed) >= 2  # one fetch failure per type plus the throttled listing


def test_backup_blocked_when_schedule_disabled_or_consent_missing(
    app, instance, fixture_file
) -> None:
    disabled = make_scope(app, "acme", "full")
    add_schedule(app, disabled, enabled=False)
    noconsent = make_scope(app, "acme", "noconsent", readiness=Readiness.CONSENT_MISSING)
    add_schedule(app, noconsent)
    for scope in (disabled, noconsent):
        result = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[2], scope.partition_key)
        assert_failed_step_without_materialization(result, "Blocked: ")
        assert check_result(result) == "warning"  # blocked
    with app.sessions() as s:
        outcomes = {
            r.managed_environment_id: (r.outcome, r.reason_code)
            for r in s.scalars(select(OperationRun))
        }
        assert s.scalars(select(BackupSet)).all() == []
    assert outcomes == {
        disabled.environment_id: ("blocked", "backup_schedule_disabled"),
        noconsent.environment_id: ("blocked", "environment_consent_missing"),
    }


# ------------------------------------------------------------------------------ reviews
def test_review_composed_then_same_fingerprint_adopted(app, instance, fixture_file) -> None:
    scope = make_scope(app, "acme", "full")
    _inventory_then(app, instance, fixture_file, scope)
    first = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[3], scope.partition_key)
    second = materialize(app, instance, fixture_file, ARTIFACT_ASSETS[3], scope.partition_key)
    assert materialization_metadata(first)["reason_code"] == "review_composed"
    assert materialization_metadata(second)["reason_code"] == "review_reused"
    with app.sessions() as s:
        reviews = s.scalars(select(EnvironmentReview)).all()
        runs = s.scalars(
            select(OperationRun).where(OperationRun.type == "environment.review.compose")
        ).all()
    assert len(reviews) == 1
    assert reviews[0].status == "ready"
    assert [r.outcome for r in runs] == ["succeeded", "succeeded"]
    assert materialization_metadata(second)["artifact_id"] == reviews[0].id
    ctx = RunContext.load(runs[0].context)
    assert ctx.inputs.fingerprint == reviews[0].fingerprint


def test_execution_error_fails_run_without_leaking_text(app, instance, tmp_path) -> None:
    """A provider that cannot be built: the row ends failed and no error text leaks."""
    scope = make_scope(app, "acme", "full")
    secret = "sk-live-SECRET-VALUE"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"seed": 1, "environments": {secret: {"nope": 1}}}))
    instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
    result = dg.materialize(
        [ARTIFACT_ASSETS[0]],
        partition_key=scope.partition_key,
        instance=instance,
        raise_on_error=False,
        resources={
            "app_db": AppDatabaseResource(database_url=app.url.render_as_string(False)),
            "provider": ProviderResource(fixture_path=str(bad)),
        },
    )
    assert not result.success
    run = only_run(app, "inventory.sync")
    assert (run.status, run.outcome, run.reason_code) == (
        "completed",
        "failed",
        "job_execution_error",
    )
    logs = instance.all_logs(result.run_id)
    assert secret not in json.dumps([str(e.dagster_event) for e in logs])
    assert secret not in json.dumps(run.context)
