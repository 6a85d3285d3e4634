"""Review composition under races: one mutable review per fingerprint, adoption, dedupe."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.common import load_scope
from opsrecon_dagster.artifacts.proofview import ProofView
from opsrecon_dagster.artifacts.review import compose_review, current_fingerprint, review_proof
from opsrecon_dagster.db.models import EnvironmentReview, OperationRun
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster_tests.conftest import Scope


def _fingerprint(app: AppContext, scope: Scope) -> str:
    with app.sessions() as s:
        return current_fingerprint(s, scope.workspace_id, scope.environment_id)


def _start(app: AppContext, scope: Scope, fp: str, trigger: str = "manual") -> int:
    return app.runs.start(
        OperationType.ENVIRONMENT_REVIEW_COMPOSE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(fingerprint=fp, trigger=trigger),
    ).run.id


def test_repeated_trigger_returns_the_active_run(app: AppContext, scope: Scope) -> None:
    fp = _fingerprint(app, scope)
    assert _start(app, scope, fp) == _start(app, scope, fp, trigger="schedule")


def test_concurrent_composes_leave_one_mutable_review(app: AppContext, scope: Scope) -> None:
    """Different runs (e.g. one finished, one new) compose the same fingerprint at once."""
    fp = _fingerprint(app, scope)
    run_ids = [  # six distinct runs (other schedule ticks) that share one fingerprint
        app.runs.start(
            OperationType.ENVIRONMENT_REVIEW_COMPOSE,
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            inputs=RunInputs(fingerprint=fp, scheduled_for=datetime(2026, 1, 1, hour, tzinfo=UTC)),
        ).run.id
        for hour in range(6)
    ]
    assert len(set(run_ids)) == 6
    scopes = []
    with app.sessions() as s:
        for run_id in run_ids:
            run = s.get(OperationRun, run_id)
            assert run is not None
            scopes.append(load_scope(s, run))
    barrier = threading.Barrier(len(scopes))

    def compose(i: int) -> tuple[int, bool]:
        barrier.wait()
        return compose_review(app.sessions, scopes[i], lambda _p: None)

    with ThreadPoolExecutor(len(scopes)) as pool:
        results = list(pool.map(compose, range(len(scopes))))
    assert len({review_id for review_id, _ in results}) == 1
    assert sum(not adopted for _, adopted in results) == 1
    with app.sessions() as s:
        reviews = s.scalars(select(EnvironmentReview)).all()
        assert len(reviews) == 1
        runs = [s.get(OperationRun, rid) for rid in run_ids]
        view = ProofView.load(s, [r for r in runs if r])
        proofs = [review_proof(view, r, sc) for r, sc in zip(runs, scopes, strict=True) if r]
    assert {p.outcome for p in proofs} == {RunOutcome.SUCCEEDED}
    assert sorted(p.reason_code for p in proofs) == ["review_composed"] + ["review_reused"] * 5
