"""Readiness from the provider (docs/decisions.md#blocked): a 401 or 403 the provider answers
during a job sets the environment's readiness, with an audit row and no provider payload,
and later runs are blocked before any provider call; a successful call restores ``ready``.
Real ``dagster.materialize`` runs and the job path with the fixture provider, both DBs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.execution import run_job
from opsrecon_dagster.artifacts.families import FAMILY_BY_TYPE
from opsrecon_dagster.artifacts.readiness import READINESS_CHANGED
from opsrecon_dagster.assets.artifacts import ARTIFACT_ASSETS
from opsrecon_dagster.db.models import AuditLog, ManagedEnvironment, OperationRun
from opsrecon_dagster.enums import Readiness
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunContext, RunInputs
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.providers.fixture import FixtureConfig, FixtureTenantProvider
from opsrecon_dagster.resources import AppDatabaseResource, ProviderResource
from opsrecon_dagster_tests.conftest import Scope, make_scope

TYPES = ["deviceConfigurations", "compliancePolicies", "appProtectionPolicies"]
INV = OperationType.INVENTORY_SYNC


def _config(faults: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "seed": 3,
        "page_size": 2,
        "default_policy_types": {t: 2 for t in TYPES},
        "environments": {key: {"faults": f} for key, f in faults.items()},
    }


def _materialize(app: AppContext, instance: dg.DagsterInstance, path: Path, scope: Scope) -> None:
    if not instance.has_dynamic_partition(ENVIRONMENTS.name or "", scope.partition_key):
        instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
    dg.materialize(
        [ARTIFACT_ASSETS[0]],
        partition_key=scope.partition_key,
        instance=instance,
        raise_on_error=False,  # a blocked run fails its step
        resources={
            "app_db": AppDatabaseResource(database_url=app.url.render_as_string(False)),
            "provider": ProviderResource(fixture_path=str(path)),
        },
    )


def _readiness(app: AppContext, scope: Scope) -> str:
    with app.sessions() as s:
        env = s.get(ManagedEnvironment, scope.environment_id)
        assert env is not None
        return env.readiness


def _runs(app: AppContext) -> list[OperationRun]:
    with app.sessions() as s:
        return list(s.scalars(select(OperationRun).order_by(OperationRun.id)).all())


def _changes(app: AppContext) -> list[tuple[int, str | None, dict[str, Any]]]:
    with app.sessions() as s:
        rows = s.scalars(
            select(AuditLog).where(AuditLog.action == READINESS_CHANGED).order_by(AuditLog.id)
        ).all()
        return [(a.operation_run_id, a.reason_code, a.details) for a in rows]


def test_a_consent_refusal_blocks_the_runs_after_it(
    app: AppContext, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    scope = make_scope(app, "acme", "revoked")
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(_config({scope.partition_key: {"consent_missing": True}})))
    assert _readiness(app, scope) == "ready"

    _materialize(app, instance, path, scope)  # the provider answers 401
    [first] = _runs(app)
    assert (first.outcome, first.reason_code) == ("blocked", "inventory_access_missing")
    assert _readiness(app, scope) == "consent_missing"
    assert _changes(app) == [
        (
            first.id,
            "environment_consent_missing",
            {"previous_readiness": "ready", "readiness": "consent_missing"},
        )
    ]

    _materialize(app, instance, path, scope)  # blocked before any provider call
    second = _runs(app)[1]
    assert (second.outcome, second.reason_code) == ("blocked", "environment_consent_missing")
    check = RunContext.load(second.context).precondition
    assert check is not None and check.blocker == "environment_consent_missing"
    assert len(_changes(app)) == 1  # nothing new was learned: no second row


def _job(app: AppContext, scope: Scope, provider: FixtureTenantProvider, **inputs: Any) -> int:
    """One inventory run through the job path (``run_job``), on ``provider``."""
    run_id = app.runs.start(
        INV,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(**inputs),
    ).run.id
    run_job(app.sessions, app.runs, FAMILY_BY_TYPE[INV.value], run_id, lambda: provider, None)
    return run_id


def _provider(faults: dict[str, dict[str, Any]]) -> FixtureTenantProvider:
    return FixtureTenantProvider(FixtureConfig.model_validate(_config(faults)))


def test_permission_refused_everywhere_blocks_refused_somewhere_does_not(app: AppContext) -> None:
    """403 on every call: ``permission_missing``. 403 on one type while others answer: the
    run is partial and the environment stays ready."""
    nowhere = make_scope(app, "acme", "nowhere")
    somewhere = make_scope(app, "acme", "somewhere")
    provider = _provider(
        {
            nowhere.partition_key: {"permission_missing_types": TYPES},
            somewhere.partition_key: {"permission_missing_types": TYPES[:1]},
        }
    )
    refused = _job(app, nowhere, provider)
    partial = _job(app, somewhere, provider)
    assert _readiness(app, nowhere) == "permission_missing"
    assert _readiness(app, somewhere) == "ready"
    assert app.runs.get(partial).outcome == "partially_succeeded"
    assert [(run_id, code) for run_id, code, _ in _changes(app)] == [
        (refused, "environment_permission_missing")
    ]
    later = _job(app, nowhere, _provider({}))  # the provider would answer now; not asked
    assert (app.runs.get(later).outcome, app.runs.get(later).reason_code) == (
        "blocked",
        "environment_permission_missing",
    )


def test_a_successful_call_restores_ready(app: AppContext) -> None:
    """A run already at work when another's call was refused (claimed while ready) gets
    answers: the environment is ready again, audited, and the next run is not blocked."""
    scope = make_scope(app, "acme", "flaky")
    refusing = _provider({scope.partition_key: {"consent_missing": True}})
    answering = _provider({})
    refused: list[int] = []

    def while_claimed() -> FixtureTenantProvider:
        # This run passed its precondition check; now another run meets a 401.
        refused.append(_job(app, scope, refusing, policy_types=TYPES[:1]))
        assert _readiness(app, scope) == "consent_missing"
        return answering

    restoring = app.runs.start(
        INV, workspace_id=scope.workspace_id, environment_id=scope.environment_id
    ).run.id
    run_job(app.sessions, app.runs, FAMILY_BY_TYPE[INV.value], restoring, while_claimed, None)
    assert app.runs.get(restoring).outcome == "succeeded"
    assert _readiness(app, scope) == "ready"
    assert [(run_id, details["readiness"]) for run_id, _, details in _changes(app)] == [
        (refused[0], "consent_missing"),
        (restoring, "ready"),
    ]
    after = _job(app, scope, answering, policy_types=TYPES[1:])
    assert app.runs.get(after).outcome == "succeeded"


def test_an_operator_state_is_never_overwritten(app: AppContext) -> None:
    """``disabled`` is the operator's: a run cannot even reach the provider, and nothing
    the provider says changes it."""
    scope = make_scope(app, "acme", "off", readiness=Readiness.DISABLED)
    run_id = _job(app, scope, _provider({}))
    assert app.runs.get(run_id).reason_code == "environment_disabled"
    assert _readiness(app, scope) == "disabled"
    assert _changes(app) == []
