"""The review lifecycle: no draft deadlock, fingerprints from the inputs used, supersession
that keeps a run's proof, and operator transitions with their event rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.common import Proof, load_scope
from opsrecon_dagster.artifacts.proofview import ProofView
from opsrecon_dagster.artifacts.review import (
    compose_review,
    current_fingerprint,
    review_proof,
)
from opsrecon_dagster.artifacts.review_lifecycle import (
    ReviewLifecycle,
    ReviewNotFoundError,
    ReviewTransitionError,
)
from opsrecon_dagster.db.models import EnvironmentReview, OperationRun, ReviewEvent
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster_tests.conftest import Scope, add_inventory_item

_hours = iter(range(24 * 365))


def _start(app: AppContext, scope: Scope) -> int:
    """A new compose run (a distinct schedule tick) with the current fingerprint."""
    with app.sessions() as s:
        fp = current_fingerprint(s, scope.workspace_id, scope.environment_id)
    hour = next(_hours)
    return app.runs.start(
        OperationType.ENVIRONMENT_REVIEW_COMPOSE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(
            fingerprint=fp,
            scheduled_for=datetime(2026, 1, 1, tzinfo=UTC).replace(
                hour=hour % 24, day=1 + hour // 24 % 28
            ),
        ),
    ).run.id


def _compose(app: AppContext, run_id: int) -> tuple[int, bool]:
    with app.sessions() as s:
        run = s.get(OperationRun, run_id)
        assert run is not None
        scope = load_scope(s, run)
    return compose_review(app.sessions, scope, lambda _p: None)


def _proof(app: AppContext, run_id: int) -> Proof:
    with app.sessions() as s:
        view, run, scope = ProofView.for_run(s, run_id)
        return review_proof(view, run, scope)


def _review(app: AppContext, review_id: int) -> EnvironmentReview:
    with app.sessions() as s:
        review = s.get(EnvironmentReview, review_id)
        assert review is not None
        return review


@pytest.fixture
def inventoried(app: AppContext, scope: Scope) -> Scope:
    seed = _start(app, scope)
    add_inventory_item(app, scope, seed, "a")
    return scope


def _draft(app: AppContext, scope: Scope, status: str) -> int:
    """A same-fingerprint review left in ``status`` by another (earlier) run."""
    other = _start(app, scope)
    with app.sessions.begin() as s:
        row = EnvironmentReview(
            workspace_id=scope.workspace_id,
            managed_environment_id=scope.environment_id,
            fingerprint=current_fingerprint(s, scope.workspace_id, scope.environment_id),
            status=status,
            operation_run_id=other,
        )
        s.add(row)
        s.flush()
        return row.id


@pytest.mark.parametrize("left_behind", ["draft", "failed"])
def test_compose_supersedes_a_same_fingerprint_draft_or_failed_review(
    app: AppContext, inventoried: Scope, left_behind: str
) -> None:
    """Once a draft blocked every compose (adopted, no proof); now it is replaced."""
    old = _draft(app, inventoried, left_behind)
    run_id = _start(app, inventoried)
    review_id, adopted = _compose(app, run_id)
    assert not adopted and review_id != old
    stale = _review(app, old)
    assert (stale.status, stale.superseded_by_id) == ("superseded", review_id)
    proof = _proof(app, run_id)
    assert (proof.outcome, proof.reason_code) == ("succeeded", "review_composed")
    # Composing again adopts the ready review: one mutable review per fingerprint.
    again = _start(app, inventoried)
    assert _compose(app, again) == (review_id, True)
    assert (_proof(app, again).outcome, _proof(app, again).reason_code) == (
        "succeeded",
        "review_reused",
    )
    with app.sessions() as s:
        actions = s.scalars(select(ReviewEvent.action).order_by(ReviewEvent.id)).all()
    assert actions == ["superseded", "composed"]


def test_fingerprint_is_computed_from_the_inputs_used_at_compose_time(
    app: AppContext, inventoried: Scope
) -> None:
    run_id = _start(app, inventoried)
    add_inventory_item(app, inventoried, run_id, "b")  # the inputs change after the run started
    review_id, _ = _compose(app, run_id)
    review = _review(app, review_id)
    with app.sessions() as s:
        now = current_fingerprint(s, inventoried.workspace_id, inventoried.environment_id)
        requested = s.get(OperationRun, run_id)
        assert requested is not None
    asked = requested.context["inputs"]["fingerprint"]
    assert review.fingerprint == now != asked
    assert review.requested_fingerprint == asked
    proof = _proof(app, run_id)
    assert (proof.outcome, proof.reason_code) == ("succeeded", "review_composed")
    assert proof.counts["fingerprint_drift"] == 1
    assert proof.evidence.counts["fingerprint_drift"] == 1  # recorded with the decision


def test_a_review_whose_fingerprint_does_not_match_its_summary_proves_nothing(
    app: AppContext, inventoried: Scope
) -> None:
    run_id = _start(app, inventoried)
    review_id, _ = _compose(app, run_id)
    assert _proof(app, run_id).counts["fingerprint_drift"] == 0
    with app.sessions.begin() as s:
        review = s.get(EnvironmentReview, review_id)
        assert review is not None
        review.summary = {**review.summary, "inventory_item_count": 99}
    proof = _proof(app, run_id)
    assert (proof.outcome, proof.reason_code) == ("failed", "review_fingerprint_mismatch")


@pytest.mark.parametrize("later", ["superseded", "archived", "published"])
def test_a_run_is_still_proven_by_its_review_after_the_review_moves_on(
    app: AppContext, inventoried: Scope, later: str
) -> None:
    run_id = _start(app, inventoried)
    review_id, _ = _compose(app, run_id)
    lifecycle = ReviewLifecycle(app.sessions)
    {
        "superseded": lifecycle.supersede,
        "archived": lifecycle.archive,
        "published": lifecycle.publish,
    }[later](review_id)
    assert _review(app, review_id).status == later
    proof = _proof(app, run_id)
    assert (proof.outcome, proof.reason_code, proof.artifact_id) == (
        "succeeded",
        "review_composed",
        review_id,
    )


def test_a_superseded_draft_of_the_run_is_no_proof(app: AppContext, inventoried: Scope) -> None:
    run_id = _start(app, inventoried)
    with app.sessions.begin() as s:
        s.add(
            EnvironmentReview(
                workspace_id=inventoried.workspace_id,
                managed_environment_id=inventoried.environment_id,
                fingerprint="0" * 64,
                status="draft",
                operation_run_id=run_id,
            )
        )
    with app.sessions() as s:
        [draft_id] = s.scalars(select(EnvironmentReview.id)).all()
    ReviewLifecycle(app.sessions).supersede(draft_id)
    assert _proof(app, run_id).reason_code == "review_not_found"


def test_publishing_supersedes_the_previously_published_review(
    app: AppContext, inventoried: Scope
) -> None:
    lifecycle = ReviewLifecycle(app.sessions)
    first, _ = _compose(app, _start(app, inventoried))
    assert lifecycle.publish(first) == "published"
    add_inventory_item(app, inventoried, _start(app, inventoried), "c")
    second, adopted = _compose(app, _start(app, inventoried))
    assert not adopted
    lifecycle.publish(second)
    assert _review(app, first).status == "superseded"
    assert _review(app, first).superseded_by_id == second
    assert _review(app, second).status == "published"
    events = [(e.review_id, e.action, e.from_status, e.to_status) for e in lifecycle.events(first)]
    assert events == [
        (first, "composed", None, "ready"),
        (first, "published", "ready", "published"),
        (first, "superseded", "published", "superseded"),
    ]
    assert all(e.actor == "operator" for e in lifecycle.events(first)[1:])


def test_the_state_machine_refuses_moves_it_does_not_allow(
    app: AppContext, inventoried: Scope
) -> None:
    lifecycle = ReviewLifecycle(app.sessions)
    review_id, _ = _compose(app, _start(app, inventoried))
    lifecycle.archive(review_id)
    with pytest.raises(ReviewTransitionError, match="is archived; it cannot be published"):
        lifecycle.publish(review_id)
    with pytest.raises(ReviewTransitionError):
        lifecycle.supersede(review_id)
    with pytest.raises(ReviewNotFoundError):
        lifecycle.publish(review_id + 1000)
    draft = _draft(app, inventoried, "draft")
    with pytest.raises(ReviewTransitionError, match="is draft; it cannot be published"):
        lifecycle.publish(draft)
    # A refused move writes nothing.
    assert [e.action for e in lifecycle.events(review_id)] == ["composed", "archived"]
    assert _review(app, draft).status == "draft"
