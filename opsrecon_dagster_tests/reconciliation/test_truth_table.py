"""The decision table (docs/decisions.md), per family: each row is a real run state and its
decided outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from opsrecon_dagster.db.models import EnvironmentReview, InventoryCoverage
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunContext
from opsrecon_dagster_tests.reconciliation.conftest import World

INV = OperationType.INVENTORY_SYNC
BASE = OperationType.BASELINE_CAPTURE
BACK = OperationType.BACKUP_SCHEDULE_EXECUTE
REV = OperationType.ENVIRONMENT_REVIEW_COMPOSE


def died_after_work(world: World, op: OperationType, env: str, asset: str, **kw) -> int:
    scope = world.scope(env)
    if op is BASE:
        world.inventory(scope)
        world.profile(scope, kw.pop("subjects", [{"policy_type": "compliancePolicies"}]))
    if op is BACK:
        world.schedule(scope, enabled=kw.pop("enabled", True))
    if op is REV:
        world.inventory(scope)
    run_id = world.start(op, scope)
    world.running(run_id)
    world.work_then_die(asset, run_id)
    return run_id


ROWS = [
    # family, environment, asset, extra setup, expected outcome, expected reason
    (INV, "full", "inventory_items", {}, "succeeded", "inventory_all_types_covered"),
    (INV, "partial", "inventory_items", {}, "partially_succeeded", "inventory_partial_coverage"),
    (INV, "noconsent", "inventory_items", {}, "blocked", "inventory_access_missing"),
    (INV, "allthrottled", "inventory_items", {}, "failed", "inventory_no_type_covered"),
    (BASE, "full", "baseline_snapshots", {}, "succeeded", "baseline_snapshot_complete"),
    (
        BASE,
        "partial",
        "baseline_snapshots",
        {
            "subjects": [
                {"policy_type": "compliancePolicies"},
                {"policy_type": "x", "display_name": "y"},
            ]
        },
        "partially_succeeded",
        "baseline_snapshot_with_gaps",
    ),
    (
        BASE,
        "full",
        "baseline_snapshots",
        {"subjects": [{"policy_type": "nope"}]},
        "failed",
        "baseline_capture_failed",
    ),
    (
        BASE,
        "full",
        "baseline_snapshots",
        {"subjects": []},
        "blocked",
        "baseline_profile_without_subjects",
    ),
    (BACK, "full", "backup_sets", {}, "succeeded", "backup_all_items_captured"),
    (BACK, "partial", "backup_sets", {}, "partially_succeeded", "backup_some_items_failed"),
    (BACK, "full", "backup_sets", {"enabled": False}, "blocked", "backup_schedule_disabled"),
    (BACK, "allthrottled", "backup_sets", {}, "failed", "backup_no_item_captured"),
    (REV, "full", "environment_reviews", {}, "succeeded", "review_composed"),
]


@pytest.mark.parametrize(
    ("op", "env", "asset", "extra", "outcome", "reason"),
    ROWS,
    ids=[f"{r[0].value}-{r[5]}" for r in ROWS],
)
def test_stale_run_is_decided_from_its_proof(
    world: World, op, env, asset, extra, outcome, reason
) -> None:
    run_id = died_after_work(world, op, env, asset, **dict(extra))
    [result] = world.reconcile(run_ids=[run_id])
    assert (result.verdict.outcome, result.verdict.reason_code) == (outcome, reason)
    assert world.decided(run_id) == (outcome, reason)
    decision = RunContext.load(world.app.runs.get(run_id).context).decision
    assert decision is not None
    assert decision.decided_by.value == "reconciler"
    assert decision.evidence.workspace_id is not None


@pytest.mark.parametrize(
    ("op", "asset"),
    [
        (INV, "inventory_items"),
        (BASE, "baseline_snapshots"),
        (BACK, "backup_sets"),
        (REV, "environment_reviews"),
    ],
)
def test_rows_without_proof(world: World, op, asset) -> None:
    """No proof, stale → failed; Dagster success without proof → failed; alive → wait."""
    scope = world.scope("full")
    if op in (BASE, REV):
        world.inventory(scope)
    if op is BASE:
        world.profile(scope, [{"policy_type": "compliancePolicies"}])
    if op is BACK:
        world.schedule(scope)
    stale = world.start(op, scope, scheduled_for=datetime(2026, 1, 1, tzinfo=UTC))
    world.running(stale)
    lied = world.start(op, scope, scheduled_for=datetime(2026, 1, 2, tzinfo=UTC))
    results = {r.run_id: r for r in world.reconcile(later=timedelta(0), run_ids=[stale])}
    assert results[stale].verdict.outcome is None  # alive and not stale: no decision yet
    assert world.app.runs.get(stale).status == "running"
    world.reconcile(run_ids=[stale])
    assert world.decided(stale) == ("failed", "stale_without_proof")
    world.running(lied, "SUCCESS")
    world.reconcile(later=timedelta(0), run_ids=[lied])
    assert world.decided(lied) == ("failed", "dagster_success_without_proof")


def test_dagster_failure_and_cancel_decide_at_once(world: World) -> None:
    scope = world.scope("full")
    failed = world.start(INV, scope, policy_types=["compliancePolicies"])
    canceled = world.start(INV, scope, policy_types=["deviceConfigurations"])
    world.running(failed, "FAILURE")
    world.running(canceled, "CANCELED")
    world.reconcile(later=timedelta(0), run_ids=[failed, canceled])
    assert world.decided(failed) == ("failed", "dagster_run_failed_without_proof")
    assert world.decided(canceled) == ("failed", "dagster_run_canceled_without_proof")
    # A failed Dagster run that did leave proof is decided by the proof.
    proven = world.start(INV, scope, policy_types=["appProtectionPolicies"])
    world.running(proven, "FAILURE")
    world.work_then_die("inventory_items", proven)
    world.reconcile(later=timedelta(0), run_ids=[proven])
    assert world.decided(proven) == ("succeeded", "inventory_all_types_covered")


def test_queued_run_that_never_started(world: World) -> None:
    run_id = world.start(INV, world.scope("full"))
    assert world.reconcile(later=timedelta(0)) == []  # not stale yet: not even a candidate
    assert world.app.runs.get(run_id).status == "queued"
    world.reconcile()
    assert world.decided(run_id) == ("failed", "queued_never_started")


def test_wrong_scope_and_older_proof_are_ignored(world: World) -> None:
    """Coverage written under another workspace, or before the run, proves nothing."""
    mine = world.scope("contoso", "acme")
    theirs = world.scope("contoso", "globex")
    run_id = world.start(INV, mine)
    world.running(run_id)
    other = world.start(INV, theirs)
    world.work_then_die("inventory_items", other)
    with world.app.sessions.begin() as s:  # the other run's rows now claim our run id
        for row in s.scalars(select(InventoryCoverage)):
            row.operation_run_id = run_id
    [result] = world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "stale_without_proof")
    assert result.verdict.evidence.rejected_wrong_scope == 3
    # Proof dated before the run started is not proof of this run.
    older = world.start(INV, mine, policy_types=["compliancePolicies"])
    world.running(older)
    world.work_then_die("inventory_items", older)
    with world.app.sessions.begin() as s:
        for row in s.scalars(
            select(InventoryCoverage).where(InventoryCoverage.operation_run_id == older)
        ):
            row.recorded_at = row.recorded_at - timedelta(days=1)
    world.reconcile(run_ids=[older])
    assert world.decided(older) == ("failed", "stale_without_proof")


def test_ambiguous_review_proof_fails_closed(world: World) -> None:
    scope = world.scope("full")
    run_id = world.start(REV, scope)
    fp = RunContext.load(world.app.runs.get(run_id).context).inputs.fingerprint
    world.running(run_id)
    with world.app.sessions.begin() as s:
        for status in ("published", "ready"):
            s.add(
                EnvironmentReview(
                    workspace_id=scope.workspace_id,
                    managed_environment_id=scope.environment_id,
                    fingerprint=fp,
                    status=status,
                    operation_run_id=run_id,
                )
            )
    world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "proof_ambiguous")


def test_unsupported_type_is_failed_once_stale_never_succeeded(world: World) -> None:
    scope = world.scope("full")
    run_id = world.start(OperationType.RESTORE_EXECUTE, scope)
    world.running(run_id, "SUCCESS")  # even a successful Dagster run proves nothing here
    assert world.reconcile(later=timedelta(0), run_ids=[run_id])[0].verdict.outcome is None
    world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "unsupported_type_stale")


def test_reconciling_twice_is_idempotent(world: World) -> None:
    run_id = died_after_work(world, INV, "partial", "inventory_items")
    first = world.reconcile(run_ids=[run_id])
    before = world.app.runs.get(run_id)
    second = world.reconcile(run_ids=[run_id])
    after = world.app.runs.get(run_id)
    assert first[0].status is not None
    assert second == []  # a finalized run is no longer a candidate
    assert (after.outcome, after.context) == (before.outcome, before.context)
    assert [a.action for a in world.app.runs.audit_trail(run_id)].count("run.reconciled") == 1


def test_dry_run_writes_nothing(world: World) -> None:
    run_id = died_after_work(world, INV, "full", "inventory_items")
    [result] = world.reconcile(run_ids=[run_id], dry_run=True)
    assert result.verdict.outcome == "succeeded"
    assert result.status is None
    assert world.app.runs.get(run_id).status == "running"


def test_failed_review_fails_the_run(world: World) -> None:
    scope = world.scope("full")
    run_id = world.start(REV, scope)
    fp = RunContext.load(world.app.runs.get(run_id).context).inputs.fingerprint
    world.running(run_id)
    with world.app.sessions.begin() as s:
        s.add(
            EnvironmentReview(
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                fingerprint=fp,
                status="failed",
                operation_run_id=run_id,
            )
        )
    world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "review_compose_failed")
