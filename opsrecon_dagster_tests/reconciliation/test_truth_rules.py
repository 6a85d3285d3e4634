"""The rules every family shares (docs/decisions.md): the blocked rule without artifacts,
counts over status fields, requested types only, reuse of an older same-fingerprint review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from opsrecon_dagster.artifacts.common import load_scope
from opsrecon_dagster.artifacts.review import compose_review
from opsrecon_dagster.artifacts.review_lifecycle import ReviewLifecycle
from opsrecon_dagster.db.models import (
    BackupSet,
    BaselineSnapshot,
    EnvironmentReview,
    InventoryCoverage,
    ManagedEnvironment,
    OperationRun,
)
from opsrecon_dagster.enums import Readiness
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunContext
from opsrecon_dagster.tenancy import set_readiness
from opsrecon_dagster_tests.conftest import Scope, make_scope
from opsrecon_dagster_tests.reconciliation.conftest import World

INV = OperationType.INVENTORY_SYNC
BASE = OperationType.BASELINE_CAPTURE
BACK = OperationType.BACKUP_SCHEDULE_EXECUTE
REV = OperationType.ENVIRONMENT_REVIEW_COMPOSE
FAMILIES = [INV, BASE, BACK, REV]


def _prepare(world: World, op: OperationType, scope: Scope) -> None:
    if op is BASE:
        world.profile(scope, [{"policy_type": "compliancePolicies"}])
    if op is BACK:
        world.schedule(scope)


@pytest.mark.parametrize("op", FAMILIES, ids=[f.value for f in FAMILIES])
@pytest.mark.parametrize(
    ("readiness", "reason"),
    [
        (Readiness.CONSENT_MISSING, "environment_consent_missing"),
        (Readiness.DISABLED, "environment_disabled"),
    ],
)
def test_blocked_without_artifacts_when_readiness_held_at_start(
    world: World, op: OperationType, readiness: Readiness, reason: str
) -> None:
    """The worker never got to record its check; the readiness problem predates the run."""
    scope = make_scope(world.app, "acme", f"env-{readiness.value.replace('_', '-')}", readiness)
    _prepare(world, op, scope)
    run_id = world.start(op, scope)
    world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("blocked", reason)


@pytest.mark.parametrize("op", FAMILIES, ids=[f.value for f in FAMILIES])
def test_blocked_from_the_recorded_check_when_the_worker_died(
    world: World, op: OperationType
) -> None:
    """The job recorded its blocker before any provider call, then died before completing."""
    scope = make_scope(world.app, "acme", "nope", Readiness.PERMISSION_MISSING)
    _prepare(world, op, scope)
    run_id = world.start(op, scope)
    world.running(run_id)  # the claim records the precondition check
    check = RunContext.load(world.app.runs.get(run_id).context).precondition
    assert check is not None
    assert check.blocker == "environment_permission_missing"
    world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("blocked", "environment_permission_missing")


def test_readiness_that_changed_after_the_run_started_does_not_block(world: World) -> None:
    scope = world.scope("full")
    run_id = world.start(INV, scope)
    with world.app.sessions.begin() as s:
        env = s.get(ManagedEnvironment, scope.environment_id)
        assert env is not None
        set_readiness(s, env, Readiness.CONSENT_MISSING)
    world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "queued_never_started")


def _tagged(world: World, op: OperationType, scope: Scope) -> int:
    run_id = world.start(op, scope)
    world.running(run_id)
    return run_id


def test_backup_set_marked_complete_without_items_is_failed(world: World) -> None:
    scope = world.scope("full")
    schedule_id = world.schedule(scope)
    run_id = _tagged(world, BACK, scope)
    with world.app.sessions.begin() as s:
        s.add(
            BackupSet(
                backup_schedule_id=schedule_id,
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                operation_run_id=run_id,
                status="complete",
                item_count=3,  # the fields claim items; no item row exists
                captured_count=3,
                failed_count=0,
            )
        )
    [result] = world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "backup_no_item_captured")
    assert result.verdict.evidence.counts["items"] == 0


def test_baseline_snapshot_marked_complete_without_items_is_failed(world: World) -> None:
    scope = world.scope("full")
    world.inventory(scope)
    profile_id = world.profile(scope, [{"policy_type": "compliancePolicies"}])
    run_id = _tagged(world, BASE, scope)
    with world.app.sessions.begin() as s:
        s.add(
            BaselineSnapshot(
                baseline_profile_id=profile_id,
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                operation_run_id=run_id,
                status="complete",
                subject_count=1,
                captured_count=1,  # claimed; no snapshot item row exists
                gap_count=0,
            )
        )
    world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "baseline_capture_failed")


def test_inventory_counts_only_the_requested_types(world: World) -> None:
    scope = world.scope("full")
    run_id = world.start(INV, scope, policy_types=["compliancePolicies"])
    world.running(run_id)
    with world.app.sessions.begin() as s:
        s.add(
            InventoryCoverage(
                operation_run_id=run_id,
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                policy_type="deviceConfigurations",  # nobody asked for it
                status="succeeded",
                item_count=4,
                recorded_at=datetime.now(UTC),
            )
        )
    [result] = world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "stale_without_proof")
    assert result.verdict.evidence.counts["types_unrequested"] == 1
    assert result.verdict.evidence.counts["types_succeeded"] == 0


def test_same_fingerprint_review_older_than_the_run_is_reuse(world: World) -> None:
    scope = world.scope("full")
    world.inventory(scope)
    run_id = _tagged(world, REV, scope)
    run = world.app.runs.get(run_id)
    fingerprint = RunContext.load(run.context).inputs.fingerprint
    with world.app.sessions.begin() as s:
        s.add(
            EnvironmentReview(
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                fingerprint=fingerprint,
                status="ready",
                operation_run_id=run_id,  # even carrying the run's id: it predates the run
                created_at=run.created_at - timedelta(days=1),
            )
        )
    world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("succeeded", "review_reused")
    with world.app.sessions() as s:
        assert len(s.scalars(select(EnvironmentReview)).all()) == 1


def test_a_ready_review_of_another_fingerprint_made_by_another_run_is_not_reuse(
    world: World,
) -> None:
    """Same scope, ready, made by another run, but for other inputs: it proves nothing
    about this run, which fails closed for lack of its own review."""
    scope = world.scope("full")
    world.inventory(scope)
    run_id = _tagged(world, REV, scope)
    other = world.start(REV, world.scope("full"), trigger="other", fingerprint="f" * 64)
    with world.app.sessions.begin() as s:
        s.add(
            EnvironmentReview(
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                fingerprint="e" * 64,  # not the fingerprint this run was started for
                status="ready",
                operation_run_id=other,
            )
        )
    [result] = world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", result.verdict.reason_code)
    assert result.verdict.reason_code == "stale_without_proof"  # no proof of its own


@pytest.mark.parametrize("status", ["ready", "published"])
def test_an_older_reusable_review_of_another_fingerprint_is_not_reuse(
    world: World, status: str
) -> None:
    """Everything reuse looks for (same scope, reusable status, older than the run, made
    by another run that completed) except the fingerprint: not even a candidate, and the
    run fails closed for lack of its own review."""
    scope = world.scope("full")
    world.inventory(scope)
    other = world.start(REV, scope, trigger="other", fingerprint="e" * 64)
    world.reconcile(run_ids=[other], force_stale=True)  # the other run is final
    run_id = _tagged(world, REV, scope)
    run = world.app.runs.get(run_id)
    fingerprint = RunContext.load(run.context).inputs.fingerprint
    assert fingerprint is not None and fingerprint != "e" * 64
    with world.app.sessions.begin() as s:
        s.add(
            EnvironmentReview(
                workspace_id=scope.workspace_id,
                managed_environment_id=scope.environment_id,
                fingerprint="e" * 64,
                status=status,
                operation_run_id=other,
                created_at=run.created_at - timedelta(days=1),
            )
        )
    [result] = world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "stale_without_proof")
    assert result.verdict.evidence.considered_ids == []
    assert result.verdict.evidence.counts["candidates"] == 0


def test_a_review_superseded_after_its_worker_died_still_proves_the_run(world: World) -> None:
    """The worker composed its review and died before reporting; by the time the reconciler
    looks, an operator has published and then superseded that review."""
    scope = world.scope("full")
    world.inventory(scope)
    run_id = world.start(REV, scope)
    world.running(run_id)
    with world.app.sessions() as s:
        run = s.get(OperationRun, run_id)
        assert run is not None
        run_scope = load_scope(s, run)
    review_id, adopted = compose_review(world.app.sessions, run_scope, lambda _p: None)
    assert not adopted
    lifecycle = ReviewLifecycle(world.app.sessions)
    lifecycle.publish(review_id)
    lifecycle.supersede(review_id)
    world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("succeeded", "review_composed")
