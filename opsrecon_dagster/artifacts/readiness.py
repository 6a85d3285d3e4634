"""Readiness from the provider's own answers (docs/decisions.md#blocked).

A job's provider calls pass through ``ProviderWatch``, which keeps only what kind of answer
each call got: an answer, a refusal for missing consent (HTTP 401) or for a missing
permission (HTTP 403). When the job's calls are done, ``record_provider_readiness`` sets the
environment's readiness from them, with an audit row on the run that found it:

- consent refused, and no answer after it: ``consent_missing`` (consent holds for the whole
  environment);
- a permission refused, and no call answered: ``permission_missing`` (a permission missing
  for some types only leaves the environment usable: its runs are partial, not blocked);
- any other call answered: ``ready`` again.

Later runs are then blocked by their precondition check, before any provider call. No
payload, token or error text is kept: kinds of answers only.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.artifacts.common import READINESS_REASONS, RunScope
from opsrecon_dagster.db.models import AuditLog, ManagedEnvironment, OperationRun
from opsrecon_dagster.enums import Actor, Readiness
from opsrecon_dagster.operations.context import AuditDetails
from opsrecon_dagster.providers.base import (
    EnvironmentRef,
    PolicyObject,
    ProviderError,
    ProviderErrorKind,
    TenantProvider,
)
from opsrecon_dagster.tenancy import set_readiness

# The readiness states the provider's answers decide; ``disabled`` is the operator's alone.
PROVIDER_READINESS = frozenset(
    {Readiness.READY.value, Readiness.CONSENT_MISSING.value, Readiness.PERMISSION_MISSING.value}
)
READINESS_CHANGED = "environment.readiness_changed"


class ProviderWatch:
    """A ``TenantProvider`` that passes every call through unchanged and notes the kind of
    answer it got (``readiness`` says what they add up to)."""

    def __init__(self, inner: TenantProvider) -> None:
        self._inner = inner
        self._answered = False
        self._consent_refused_last = False  # a 401 with no answer after it
        self._permission_refused = False

    def list_policies(self, env: EnvironmentRef, policy_type: str) -> Iterator[PolicyObject]:
        """The inner provider's listing; a listing counts as answered once it is complete."""
        try:
            yield from self._inner.list_policies(env, policy_type)
        except ProviderError as err:
            self._refused(err)
            raise
        self._answer()

    def fetch_policy(self, env: EnvironmentRef, policy_type: str, external_id: str) -> PolicyObject:
        """The inner provider's fetch."""
        try:
            found = self._inner.fetch_policy(env, policy_type, external_id)
        except ProviderError as err:
            self._refused(err)
            raise
        self._answer()
        return found

    @property
    def redacted_fields(self) -> int:
        """The inner provider's redaction count."""
        return self._inner.redacted_fields

    def readiness(self) -> Readiness | None:
        """What the answers so far say about the environment (None: nothing conclusive,
        e.g. no call, or only throttling and timeouts)."""
        if self._consent_refused_last:
            return Readiness.CONSENT_MISSING
        if self._answered:
            return Readiness.READY
        if self._permission_refused:
            return Readiness.PERMISSION_MISSING
        return None

    def _answer(self) -> None:
        self._answered = True
        self._consent_refused_last = False

    def _refused(self, err: ProviderError) -> None:
        if err.kind is ProviderErrorKind.CONSENT_MISSING:
            self._consent_refused_last = True
        elif err.kind is ProviderErrorKind.PERMISSION_MISSING:
            self._permission_refused = True


def record_provider_readiness(
    sessions: sessionmaker[Session], scope: RunScope, readiness: Readiness | None
) -> bool:
    """Set the run's environment to ``readiness`` (as its provider answered) with one audit
    row on the run; True when it changed. A disabled environment, or one already in that
    state, is left as it is."""
    if readiness is None:
        return False
    with sessions.begin() as session:
        env = session.scalars(
            select(ManagedEnvironment)
            .where(ManagedEnvironment.id == scope.environment_id)
            .with_for_update()
        ).one()
        previous = env.readiness
        if previous == readiness.value or previous not in PROVIDER_READINESS:
            return False
        set_readiness(session, env, readiness)
        _audit(session, scope, previous, readiness)
        return True


def _audit(session: Session, scope: RunScope, previous: str, readiness: Readiness) -> None:
    """The audit row of a readiness change, on the run whose provider calls found it (the
    run's status is unchanged: from and to are its current status)."""
    status = session.scalar(select(OperationRun.status).where(OperationRun.id == scope.run_id))
    details = AuditDetails(previous_readiness=previous, readiness=readiness.value)
    session.add(
        AuditLog(
            operation_run_id=scope.run_id,
            workspace_id=scope.workspace_id,
            managed_environment_id=scope.environment_id,
            action=READINESS_CHANGED,
            actor=Actor.JOB.value,
            from_status=status,
            to_status=status,
            reason_code=READINESS_REASONS.get(readiness.value),
            details=details.model_dump(mode="json", exclude_none=True),
        )
    )
