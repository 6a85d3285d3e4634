"""Fixtures for reconciliation: a real Dagster instance, real Dagster runs in every end state,
and runs whose worker wrote proof (through the family's real job step) and then died."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.common import load_scope
from opsrecon_dagster.artifacts.execution import claim_run
from opsrecon_dagster.artifacts.families import FAMILIES, FAMILY_BY_TYPE
from opsrecon_dagster.artifacts.review import current_fingerprint
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.instance.view import InstanceDagsterView
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.providers.fixture import FixtureConfig, FixtureTenantProvider
from opsrecon_dagster.reconciliation.reconciler import Reconciler, ReconcileResult
from opsrecon_dagster_tests.conftest import Scope, add_profile, add_schedule, make_scope

TYPES = ["deviceConfigurations", "compliancePolicies", "appProtectionPolicies"]
FIXTURE = {
    "seed": 5,
    "page_size": 3,
    "default_policy_types": {t: 3 for t in TYPES},
    "environments": {
        "acme.partial": {"faults": {"throttled_types": [TYPES[2]], "failing_items": 1}},
        "acme.noconsent": {"faults": {"consent_missing": True}},
        "acme.allthrottled": {"faults": {"throttled_types": TYPES}},
    },
}


@dg.op
def _ok() -> None:
    pass


@dg.op
def _boom() -> None:
    raise RuntimeError("worker failed")


@dg.job
def ok_job() -> None:
    _ok()


@dg.job
def failing_job() -> None:
    _boom()


@pytest.fixture
def provider() -> FixtureTenantProvider:
    return FixtureTenantProvider(FixtureConfig.model_validate(FIXTURE))


def dagster_run(instance: dg.DagsterInstance, state: str) -> str:
    """A real Dagster run in the given end state (or not started)."""
    if state == "SUCCESS":
        return ok_job.execute_in_process(instance=instance).run_id
    if state == "FAILURE":
        return failing_job.execute_in_process(instance=instance, raise_on_error=False).run_id
    run = instance.create_run_for_job(ok_job)
    if state == "CANCELED":
        instance.report_run_canceled(run)
    return run.run_id


@dataclass
class World:
    app: AppContext
    instance: dg.DagsterInstance
    provider: FixtureTenantProvider

    def scope(self, env: str, workspace: str = "acme") -> Scope:
        return make_scope(self.app, workspace, env)

    def start(self, op_type: OperationType, scope: Scope, **inputs: Any) -> int:
        if op_type is OperationType.ENVIRONMENT_REVIEW_COMPOSE and "fingerprint" not in inputs:
            with self.app.sessions() as s:
                inputs["fingerprint"] = current_fingerprint(
                    s, scope.workspace_id, scope.environment_id
                )
        return self.app.runs.start(
            op_type,
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            inputs=RunInputs(**inputs),
        ).run.id

    def running(self, run_id: int, dagster_state: str = "NOT_STARTED") -> str:
        """A worker claims the run as the job does (guard and recorded precondition check);
        types without a job are only marked running."""
        dagster_id = dagster_run(self.instance, dagster_state)
        family = FAMILY_BY_TYPE.get(self.app.runs.get(run_id).type)
        if family is None:
            self.app.runs.mark_running(run_id, dagster_id)
        else:
            claim_run(self.app.sessions, self.app.runs, family, run_id, dagster_id)
        return dagster_id

    def work_then_die(self, asset_key: str, run_id: int) -> None:
        """The family's real job step writes its proof; the run is never completed. A run
        whose recorded precondition check found a blocker does no work, as in the job."""
        with self.app.sessions() as s:
            run = s.get(OperationRun, run_id)
            assert run is not None
            scope = load_scope(s, run)
        if scope.context.precondition is not None and scope.context.precondition.blocker:
            return
        FAMILIES[asset_key].execute(self.app.sessions, scope, self.provider, lambda _p: None)

    def profile(self, scope: Scope, subjects: list[dict[str, Any]]) -> int:
        return add_profile(self.app, scope, subjects)

    def schedule(self, scope: Scope, enabled: bool = True) -> int:
        return add_schedule(self.app, scope, enabled=enabled)

    def inventory(self, scope: Scope) -> None:
        run_id = self.start(OperationType.INVENTORY_SYNC, scope, trigger="setup")
        self.work_then_die("inventory_items", run_id)
        self.reconcile(later=timedelta(0), run_ids=[run_id], force_stale=True)

    def reconcile(
        self,
        *,
        later: timedelta = timedelta(hours=3),
        run_ids: list[int] | None = None,
        force_stale: bool = False,
        dry_run: bool = False,
    ) -> list[ReconcileResult]:
        now = datetime.now(UTC) + (timedelta(hours=3) if force_stale else later)
        reconciler = Reconciler(
            self.app.sessions, self.app.runs, InstanceDagsterView(self.instance), clock=lambda: now
        )
        return reconciler.reconcile(run_ids=run_ids, dry_run=dry_run)

    def decided(self, run_id: int) -> tuple[str | None, str | None]:
        run = self.app.runs.get(run_id)
        return run.outcome, run.reason_code


@pytest.fixture
def world(app: AppContext, instance: dg.DagsterInstance, provider: FixtureTenantProvider) -> World:
    return World(app, instance, provider)


Setup = Callable[[World], int]


def write_fixture(path: Path) -> Path:
    path.write_text(json.dumps(FIXTURE))
    return path
