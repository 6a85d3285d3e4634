"""Per family: wrong-workspace and wrong-environment proof is ignored, proof older than the
run is ignored, and several candidate artifacts fail closed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from opsrecon_dagster.db.models import (
    BackupSet,
    BaselineSnapshot,
    EnvironmentReview,
    InventoryCoverage,
)
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster_tests.conftest import Scope
from opsrecon_dagster_tests.reconciliation.conftest import World

INV = OperationType.INVENTORY_SYNC
BASE = OperationType.BASELINE_CAPTURE
BACK = OperationType.BACKUP_SCHEDULE_EXECUTE
REV = OperationType.ENVIRONMENT_REVIEW_COMPOSE

CASES = [
    (INV, "inventory_items", InventoryCoverage, "recorded_at"),
    (BASE, "baseline_snapshots", BaselineSnapshot, "created_at"),
    (BACK, "backup_sets", BackupSet, "created_at"),
    (REV, "environment_reviews", EnvironmentReview, "created_at"),
]
IDS = [c[0].value for c in CASES]


def prepare(world: World, op: OperationType, scope: Scope) -> None:
    """Preconditions so that the family is not blocked in this scope."""
    if op in (BASE, REV):
        world.inventory(scope)
    if op is BASE:
        world.profile(scope, [{"policy_type": "compliancePolicies"}])
    if op is BACK:
        world.schedule(scope)


def open_run(world: World, op: OperationType, scope: Scope) -> int:
    run_id = world.start(op, scope)
    world.running(run_id)
    return run_id


@pytest.mark.parametrize(("op", "asset", "model", "_col"), CASES, ids=IDS)
@pytest.mark.parametrize("other", ["other_workspace", "other_environment"])
def test_wrong_scope_proof_is_ignored(world: World, op, asset, model, _col, other) -> None:
    mine = world.scope("contoso", "acme")
    theirs = (
        world.scope("contoso", "globex")
        if other == "other_workspace"
        else world.scope("fabrikam", "acme")
    )
    prepare(world, op, mine)
    prepare(world, op, theirs)
    my_run = open_run(world, op, mine)
    their_run = open_run(world, op, theirs)
    world.work_then_die(asset, their_run)
    with world.app.engine.begin() as conn:  # their artifact now claims to be ours
        moved = conn.execute(
            update(model).where(model.operation_run_id == their_run).values(operation_run_id=my_run)
        ).rowcount
    assert moved >= 1
    [result] = world.reconcile(run_ids=[my_run])
    assert world.decided(my_run) == ("failed", "stale_without_proof")
    assert result.verdict.evidence.rejected_wrong_scope == moved


@pytest.mark.parametrize(("op", "asset", "model", "col"), CASES[:3], ids=IDS[:3])
def test_proof_older_than_the_run_is_ignored(world: World, op, asset, model, col) -> None:
    scope = world.scope("full")
    prepare(world, op, scope)
    run_id = open_run(world, op, scope)
    world.work_then_die(asset, run_id)
    with world.app.sessions.begin() as s:
        for row in s.scalars(select(model).where(model.operation_run_id == run_id)):
            setattr(row, col, getattr(row, col) - timedelta(days=1))
    world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "stale_without_proof")


def test_older_same_fingerprint_review_is_reused(world: World) -> None:
    """Reviews are the one family where earlier proof counts: a reusable review
    (docs/decisions.md, reviews)."""
    scope = world.scope("full")
    prepare(world, REV, scope)
    first = open_run(world, REV, scope)
    world.work_then_die("environment_reviews", first)
    world.reconcile(run_ids=[first])
    second = open_run(world, REV, scope)
    world.reconcile(run_ids=[second])
    assert world.decided(first) == ("succeeded", "review_composed")
    assert world.decided(second) == ("succeeded", "review_reused")


def _duplicate(row: Any) -> Any:
    values = {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key != "id"}
    return type(row)(**values)


@pytest.mark.parametrize(("op", "asset", "model"), [c[:3] for c in CASES[1:3]], ids=IDS[1:3])
def test_several_artifacts_fail_closed(world: World, op, asset, model) -> None:
    scope = world.scope("full")
    prepare(world, op, scope)
    run_id = open_run(world, op, scope)
    world.work_then_die(asset, run_id)
    with world.app.sessions.begin() as s:
        [row] = s.scalars(select(model).where(model.operation_run_id == run_id)).all()
        twin = _duplicate(row)
        twin.status = "failed"  # the two candidates disagree
        s.add(twin)
    [result] = world.reconcile(run_ids=[run_id])
    assert world.decided(run_id) == ("failed", "proof_ambiguous")
    assert result.verdict.evidence.considered_total == 2


def test_inventory_coverage_cannot_be_ambiguous(world: World) -> None:
    """One coverage row per run and policy type is enforced by a unique constraint."""
    scope = world.scope("full")
    run_id = open_run(world, INV, scope)
    world.work_then_die("inventory_items", run_id)
    with world.app.sessions() as s:
        row = s.scalars(
            select(InventoryCoverage).where(InventoryCoverage.operation_run_id == run_id)
        ).first()
        s.add(_duplicate(row))
        with pytest.raises(IntegrityError):
            s.flush()
