"""Inventory coverage per requested type: succeeded, failed, or skipped (never attempted).

A consent failure holds for the whole environment: the types after it are not attempted and
are recorded ``skipped``, counted apart from ``failed`` in the proof and the evidence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts import inventory
from opsrecon_dagster.artifacts.execution import read_proof, run_job
from opsrecon_dagster.artifacts.families import FAMILIES
from opsrecon_dagster.artifacts.proofview import ProofView
from opsrecon_dagster.db.models import InventoryCoverage
from opsrecon_dagster.enums import Readiness
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Progress, RunContext, RunInputs
from opsrecon_dagster.providers.base import (
    EnvironmentRef,
    PolicyObject,
    ProviderError,
    ProviderErrorKind,
)
from opsrecon_dagster.providers.fixture import (
    FixtureConfig,
    FixtureEnvironment,
    FixtureFaults,
    FixtureTenantProvider,
)
from opsrecon_dagster_tests.conftest import ALL_TYPES, Scope

FAMILY = FAMILIES["inventory_items"]
FIRST, SECOND, THIRD = ALL_TYPES


class ConsentRevokedAt(FixtureTenantProvider):
    """The fixture tenant whose admin consent is gone from one policy type on: that listing
    and every later one answer 401, as the HTTP provider reports it."""

    def __init__(self, policy_type: str, config: FixtureConfig | None = None) -> None:
        super().__init__(config)
        self._revoked_from = policy_type
        self._revoked = False
        self.listed: list[str] = []

    def list_policies(self, env: EnvironmentRef, policy_type: str) -> Iterator[PolicyObject]:
        self.listed.append(policy_type)
        self._revoked = self._revoked or policy_type == self._revoked_from
        if self._revoked:
            raise ProviderError(
                ProviderErrorKind.CONSENT_MISSING, policy_type=policy_type, status_code=401
            )
        return super().list_policies(env, policy_type)


def start(app: AppContext, scope: Scope, types: list[str] = ALL_TYPES) -> int:
    return app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(policy_types=types),
    ).run.id


def coverage(app: AppContext, run_id: int) -> dict[str, tuple[str, str | None]]:
    with app.sessions() as s:
        rows = s.scalars(
            select(InventoryCoverage).where(InventoryCoverage.operation_run_id == run_id)
        ).all()
    return {r.policy_type: (r.status, r.reason_code) for r in rows}


def stored_counts(app: AppContext, run_id: int) -> dict[str, int]:
    decision = RunContext.load(app.runs.get(run_id).context).decision
    assert decision is not None
    return dict(decision.evidence.counts)


def type_counts(counts: dict[str, int]) -> tuple[int, int, int, int]:
    return (
        counts["types_succeeded"],
        counts["types_failed"],
        counts["types_skipped"],
        counts["types_missing"],
    )


def test_consent_failure_on_the_second_type_skips_the_rest(app: AppContext, scope: Scope) -> None:
    run_id = start(app, scope)
    provider = ConsentRevokedAt(SECOND)
    report = run_job(app.sessions, app.runs, FAMILY, run_id, lambda: provider, None)

    assert provider.listed == [FIRST, SECOND]  # the third type was never attempted
    assert coverage(app, run_id) == {
        FIRST: ("succeeded", None),
        SECOND: ("failed", "provider_consent_missing"),
        THIRD: ("skipped", "provider_consent_missing"),
    }
    # At least one type covered: partially succeeded (docs/decisions.md#inventory).
    run = app.runs.get(run_id)
    assert (run.outcome, run.reason_code) == ("partially_succeeded", "inventory_partial_coverage")
    # Skipped is counted apart from failed: in the job's report, the stored evidence, and
    # the proof the reconciler would read.
    assert type_counts(report.counts) == (1, 1, 1, 0)
    assert type_counts(stored_counts(app, run_id)) == (1, 1, 1, 0)
    proof = read_proof(app.sessions, FAMILY, run_id)
    assert type_counts(proof.evidence.counts) == (1, 1, 1, 0)
    assert proof.counts == proof.evidence.counts


def test_consent_failure_on_the_first_type_is_blocked_as_before(
    app: AppContext, scope: Scope
) -> None:
    """No type covered, every reason (failed or skipped) an access problem: blocked."""
    run_id = start(app, scope)
    provider = ConsentRevokedAt(FIRST)
    run_job(app.sessions, app.runs, FAMILY, run_id, lambda: provider, None)

    assert provider.listed == [FIRST]
    assert coverage(app, run_id) == {
        FIRST: ("failed", "provider_consent_missing"),
        SECOND: ("skipped", "provider_consent_missing"),
        THIRD: ("skipped", "provider_consent_missing"),
    }
    run = app.runs.get(run_id)
    assert (run.outcome, run.reason_code) == ("blocked", "inventory_access_missing")
    assert type_counts(stored_counts(app, run_id)) == (0, 1, 2, 0)


def test_a_per_type_failure_does_not_stop_the_sync(app: AppContext, scope: Scope) -> None:
    """A missing permission concerns one type: the next type is still attempted."""
    config = FixtureConfig(
        environments={
            scope.partition_key: FixtureEnvironment(
                faults=FixtureFaults(permission_missing_types=[SECOND])
            )
        }
    )
    provider = FixtureTenantProvider(config)
    run_id = start(app, scope)
    run_job(app.sessions, app.runs, FAMILY, run_id, lambda: provider, None)

    assert coverage(app, run_id) == {
        FIRST: ("succeeded", None),
        SECOND: ("failed", "provider_permission_missing"),
        THIRD: ("succeeded", None),
    }
    assert type_counts(stored_counts(app, run_id)) == (2, 1, 0, 0)


def test_a_readiness_blocker_in_the_sync_skips_every_type(app: AppContext, scope: Scope) -> None:
    """Readiness lost after the job's precondition check: nothing is attempted, every type is
    skipped with the blocker, and the run is blocked (no provider listing at all)."""
    run_id = start(app, scope)
    with app.sessions() as session:
        _view, _run, run_scope = ProofView.for_run(session, run_id)
    provider = ConsentRevokedAt("never")
    beats: list[Progress] = []
    inventory.sync_inventory(
        app.sessions,
        replace(run_scope, readiness=Readiness.CONSENT_MISSING.value),
        provider,
        beats.append,
    )
    assert provider.listed == []
    assert set(coverage(app, run_id).values()) == {("skipped", "environment_consent_missing")}
    proof = read_proof(app.sessions, FAMILY, run_id)
    assert (proof.outcome, proof.reason_code) == ("blocked", "inventory_access_missing")
    assert type_counts(proof.counts) == (0, 0, 3, 0)


def test_skipped_types_for_another_reason_fail_the_run(app: AppContext, scope: Scope) -> None:
    """Skipped decides like failed: with nothing covered, a skipped type whose reason is no
    access problem (here: none recorded) fails the run even when the failed one was an
    access problem; and a skipped type keeps a run from succeeded."""
    run_id = start(app, scope, [FIRST, SECOND])
    with app.sessions.begin() as s:
        for policy_type, status, reason in (
            (FIRST, "failed", "provider_consent_missing"),
            (SECOND, "skipped", None),
        ):
            s.add(
                InventoryCoverage(
                    operation_run_id=run_id,
                    workspace_id=scope.workspace_id,
                    managed_environment_id=scope.environment_id,
                    policy_type=policy_type,
                    status=status,
                    reason_code=reason,
                    recorded_at=datetime.now(UTC),
                )
            )
    proof = read_proof(app.sessions, FAMILY, run_id)
    assert (proof.outcome, proof.reason_code) == ("failed", "inventory_no_type_covered")
    assert type_counts(proof.counts) == (0, 1, 1, 0)

    with app.sessions.begin() as s:
        row = s.scalars(
            select(InventoryCoverage).where(
                InventoryCoverage.operation_run_id == run_id,
                InventoryCoverage.policy_type == FIRST,
            )
        ).one()
        row.status, row.reason_code, row.item_count = "succeeded", None, 2
    proof = read_proof(app.sessions, FAMILY, run_id)
    assert (proof.outcome, proof.reason_code) == (
        "partially_succeeded",
        "inventory_partial_coverage",
    )
