"""The environment review's lifecycle: a small state machine, and the service that moves it.

    draft ──> ready ──> published ──> superseded ──> archived
      │         │           └──────────────────────────^
      └─> failed┴─> superseded / archived

A review is composed straight to ``ready`` (artifacts.review); ``draft`` and ``failed`` are
mutable states a compose replaces (it supersedes them). Publishing a review supersedes the
environment's previously published one. Every change is one ``environment_review_events``
row, written in the same transaction as the status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.db.models import EnvironmentReview, ManagedEnvironment, ReviewEvent
from opsrecon_dagster.enums import Actor, ReviewStatus

S = ReviewStatus
TRANSITIONS: dict[ReviewStatus, frozenset[ReviewStatus]] = {
    S.DRAFT: frozenset({S.READY, S.FAILED, S.SUPERSEDED, S.ARCHIVED}),
    S.READY: frozenset({S.PUBLISHED, S.SUPERSEDED, S.ARCHIVED}),
    S.FAILED: frozenset({S.SUPERSEDED, S.ARCHIVED}),
    S.PUBLISHED: frozenset({S.SUPERSEDED, S.ARCHIVED}),
    S.SUPERSEDED: frozenset({S.ARCHIVED}),
    S.ARCHIVED: frozenset(),
}
# Statuses a compose adopts instead of composing again (same fingerprint).
REUSABLE = (S.READY, S.PUBLISHED)


class ReviewNotFoundError(LookupError):
    """No review with that id (in that workspace)."""


class ReviewTransitionError(ValueError):
    """The state machine does not allow this change."""


def was_composed(review: EnvironmentReview) -> bool:
    """Whether the review reached ``ready`` at some point (and so proves its run)."""
    return review.composed_at is not None or review.status in REUSABLE


def transition(
    session: Session,
    review: EnvironmentReview,
    to: ReviewStatus,
    *,
    action: str,
    actor: Actor,
    now: datetime,
    operation_run_id: int | None = None,
    details: dict[str, Any] | None = None,
    acted_by: str | None = None,
) -> None:
    """Move ``review`` to ``to`` if the state machine allows it, with its event row
    (``acted_by``: who ran the operator's command, when one did)."""
    current = ReviewStatus(review.status)
    if to not in TRANSITIONS[current]:
        raise ReviewTransitionError(f"review {review.id} is {current.value}; it cannot be {to}")
    session.add(event(review, action, actor, current, to, now, operation_run_id, details, acted_by))
    review.status = to.value
    review.updated_at = now
    if to is S.READY:
        review.composed_at = now


def event(
    review: EnvironmentReview,
    action: str,
    actor: Actor,
    from_status: ReviewStatus | None,
    to_status: ReviewStatus,
    now: datetime,
    operation_run_id: int | None = None,
    details: dict[str, Any] | None = None,
    acted_by: str | None = None,
) -> ReviewEvent:
    """The audit row of one review status change (ids and codes only)."""
    return ReviewEvent(
        review_id=review.id,
        workspace_id=review.workspace_id,
        managed_environment_id=review.managed_environment_id,
        action=action,
        actor=actor.value,
        acted_by=acted_by,
        from_status=from_status.value if from_status else None,
        to_status=to_status.value,
        operation_run_id=operation_run_id,
        details=details or {},
        created_at=now,
    )


class ReviewLifecycle:
    """Publish, supersede and archive reviews; the only writer of review status outside
    composing. Each method is one transaction and returns the review's new status."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def publish(
        self, review_id: int, *, actor: Actor = Actor.OPERATOR, acted_by: str | None = None
    ) -> ReviewStatus:
        """``ready`` → ``published``; the environment's earlier published review is superseded.
        ``acted_by`` (here and below): who ran the operator's command, on every event row."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            review = self._locked(session, review_id)
            earlier = session.scalars(
                select(EnvironmentReview).where(
                    EnvironmentReview.workspace_id == review.workspace_id,
                    EnvironmentReview.managed_environment_id == review.managed_environment_id,
                    EnvironmentReview.status == S.PUBLISHED.value,
                    EnvironmentReview.id != review.id,
                )
            ).all()
            transition(
                session,
                review,
                S.PUBLISHED,
                action="published",
                actor=actor,
                now=now,
                details={"superseded_ids": sorted(r.id for r in earlier)} if earlier else None,
                acted_by=acted_by,
            )
            for old in earlier:
                self._supersede(session, old, review.id, actor, now, acted_by)
            return S.PUBLISHED

    def supersede(
        self,
        review_id: int,
        *,
        by: int | None = None,
        actor: Actor = Actor.OPERATOR,
        acted_by: str | None = None,
    ) -> ReviewStatus:
        """Mark a review superseded (optionally naming the review that replaces it)."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            review = self._locked(session, review_id)
            if by is not None:
                other = session.get(EnvironmentReview, by)
                if other is None or (other.workspace_id, other.managed_environment_id) != (
                    review.workspace_id,
                    review.managed_environment_id,
                ):
                    raise ReviewNotFoundError(
                        f"review {by} does not exist in the environment of review {review_id}"
                    )
                if other.id == review.id:
                    raise ReviewTransitionError(f"review {review_id} cannot supersede itself")
            self._supersede(session, review, by, actor, now, acted_by)
            return S.SUPERSEDED

    def archive(
        self, review_id: int, *, actor: Actor = Actor.OPERATOR, acted_by: str | None = None
    ) -> ReviewStatus:
        """Archive a review; it stays as history (and as the proof of the run that made it)."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            review = self._locked(session, review_id)
            transition(
                session,
                review,
                S.ARCHIVED,
                action="archived",
                actor=actor,
                now=now,
                acted_by=acted_by,
            )
            return S.ARCHIVED

    def get(self, review_id: int) -> EnvironmentReview:
        """One review; ``ReviewNotFoundError`` when there is none with that id."""
        with self.sessions() as session:
            review = session.get(EnvironmentReview, review_id)
            if review is None:
                raise ReviewNotFoundError(f"review {review_id} does not exist")
            return review

    def find(
        self,
        *,
        workspace_id: int | None = None,
        environment_id: int | None = None,
        status: ReviewStatus | None = None,
        limit: int = 100,
        workspace_ids: frozenset[int] | None = None,
    ) -> list[EnvironmentReview]:
        """Reviews, newest first, optionally of one workspace, environment or status;
        ``workspace_ids``: only of these workspaces (an actor's entitlements)."""
        query = select(EnvironmentReview).order_by(EnvironmentReview.id.desc()).limit(limit)
        if workspace_id is not None:
            query = query.where(EnvironmentReview.workspace_id == workspace_id)
        if workspace_ids is not None:
            query = query.where(EnvironmentReview.workspace_id.in_(sorted(workspace_ids)))
        if environment_id is not None:
            query = query.where(EnvironmentReview.managed_environment_id == environment_id)
        if status is not None:
            query = query.where(EnvironmentReview.status == status.value)
        with self.sessions() as session:
            return list(session.scalars(query))

    def events(self, review_id: int) -> list[ReviewEvent]:
        """The review's status changes, oldest first."""
        with self.sessions() as session:
            if session.get(EnvironmentReview, review_id) is None:
                raise ReviewNotFoundError(f"review {review_id} does not exist")
            return list(
                session.scalars(
                    select(ReviewEvent)
                    .where(ReviewEvent.review_id == review_id)
                    .order_by(ReviewEvent.id)
                )
            )

    @staticmethod
    def _supersede(
        session: Session,
        review: EnvironmentReview,
        by: int | None,
        actor: Actor,
        now: datetime,
        acted_by: str | None = None,
    ) -> None:
        details = {"superseded_by_id": by} if by is not None else {}
        transition(
            session,
            review,
            S.SUPERSEDED,
            action="superseded",
            actor=actor,
            now=now,
            details=details,
            acted_by=acted_by,
        )
        review.superseded_by_id = by

    @staticmethod
    def _locked(session: Session, review_id: int) -> EnvironmentReview:
        """The review, with its environment row locked so two publishes serialize."""
        review = session.get(EnvironmentReview, review_id)
        if review is None:
            raise ReviewNotFoundError(f"review {review_id} does not exist")
        session.scalar(
            select(ManagedEnvironment.id)
            .where(ManagedEnvironment.id == review.managed_environment_id)
            .with_for_update()
        )
        session.refresh(review)
        return review
