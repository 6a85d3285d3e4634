"""Workspaces and managed environments: the scopes every run and artifact belongs to."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsrecon_dagster.db.models import (
    BackupSchedule,
    BaselineProfile,
    EnvironmentEvent,
    ManagedEnvironment,
    Workspace,
)
from opsrecon_dagster.enums import Readiness
from opsrecon_dagster.operations.context import AuditDetails

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class TenancyError(ValueError):
    """Bad slug, duplicate or unknown workspace/environment; the message says which."""


def _check_slug(kind: str, slug: str) -> None:
    if not SLUG.match(slug):
        raise TenancyError(
            f"{kind} slug {slug!r} is not valid (lowercase letters, digits and '-', max 64)"
        )


def partition_key_for(workspace_slug: str, environment_slug: str) -> str:
    """The Dagster partition key of an environment: ``<workspace>.<environment>``."""
    return f"{workspace_slug}.{environment_slug}"


def get_or_create_workspace(session: Session, slug: str, name: str | None = None) -> Workspace:
    """Return the workspace with ``slug``, creating it if needed."""
    _check_slug("workspace", slug)
    ws = session.scalars(select(Workspace).where(Workspace.slug == slug)).first()
    if ws is None:
        ws = Workspace(slug=slug, name=name or slug)
        session.add(ws)
        session.flush()
    return ws


def get_or_create_environment(
    session: Session,
    workspace: Workspace,
    slug: str,
    name: str | None = None,
    readiness: Readiness = Readiness.READY,
) -> ManagedEnvironment:
    """Return the environment ``slug`` of ``workspace``, creating it if needed."""
    _check_slug("environment", slug)
    env = session.scalars(
        select(ManagedEnvironment).where(
            ManagedEnvironment.workspace_id == workspace.id, ManagedEnvironment.slug == slug
        )
    ).first()
    if env is None:
        now = datetime.now(UTC)
        env = ManagedEnvironment(
            workspace_id=workspace.id,
            slug=slug,
            name=name or slug,
            partition_key=partition_key_for(workspace.slug, slug),
            readiness=readiness.value,
            readiness_changed_at=now,
            created_at=now,
        )
        session.add(env)
        session.flush()
    return env


def set_readiness(session: Session, env: ManagedEnvironment, readiness: Readiness) -> None:
    """Change an environment's provider readiness, recording when it changed."""
    if env.readiness != readiness.value:
        env.readiness = readiness.value
        env.readiness_changed_at = datetime.now(UTC)


# What an operator may set: ``ready`` once consent or a permission has been granted in the
# tenant (until then every run is blocked before any provider call, so no provider answer
# can set it back), and ``disabled`` for an environment that should not be managed.
# ``consent_missing`` and ``permission_missing`` are the provider's answers alone.
OPERATOR_READINESS = (Readiness.READY, Readiness.DISABLED)
READINESS_SET = "environment.readiness_set"


def parse_operator_readiness(value: str) -> Readiness:
    """``ready`` or ``disabled`` (any case); ``TenancyError`` naming the choices otherwise."""
    for state in OPERATOR_READINESS:
        if value.strip().lower() == state.value:
            return state
    choices = " or ".join(s.value for s in OPERATOR_READINESS)
    raise TenancyError(f"an operator sets readiness {choices}, not {value!r}")


def set_readiness_by_operator(
    session: Session, env: ManagedEnvironment, readiness: Readiness, acted_by: str
) -> str | None:
    """Set the environment's readiness as an operator, with an ``environment_events`` row
    naming ``acted_by``; returns the previous state, or None when it already was that
    (nothing written). A job checks readiness as it starts (its precondition), so every
    run started afterwards sees the change."""
    if readiness not in OPERATOR_READINESS:
        raise TenancyError(f"an operator does not set readiness {readiness.value!r}")
    previous = env.readiness
    if previous == readiness.value:
        return None
    set_readiness(session, env, readiness)
    details = AuditDetails(previous_readiness=previous, readiness=readiness.value)
    session.add(
        EnvironmentEvent(
            workspace_id=env.workspace_id,
            managed_environment_id=env.id,
            action=READINESS_SET,
            acted_by=acted_by,
            details=details.model_dump(mode="json", exclude_none=True),
        )
    )
    return previous


def environment_by_partition(session: Session, partition_key: str) -> ManagedEnvironment:
    """Resolve a Dagster partition key to its environment; raises ``TenancyError``."""
    env = session.scalars(
        select(ManagedEnvironment).where(ManagedEnvironment.partition_key == partition_key)
    ).first()
    if env is None:
        raise TenancyError(f"no managed environment has partition key {partition_key!r}")
    return env


def all_environments(session: Session) -> Sequence[ManagedEnvironment]:
    """Every managed environment, by partition key."""
    return session.scalars(
        select(ManagedEnvironment).order_by(ManagedEnvironment.partition_key)
    ).all()


def all_partition_keys(session: Session) -> Sequence[str]:
    """Every environment's partition key, in creation order."""
    return session.scalars(
        select(ManagedEnvironment.partition_key).order_by(ManagedEnvironment.id)
    ).all()


def resolve_environment(session: Session, ref: str) -> ManagedEnvironment:
    """Accept an environment id, a partition key or ``workspace/environment``."""
    if ref.isdigit():
        env = session.get(ManagedEnvironment, int(ref))
        if env is None:
            raise TenancyError(f"no managed environment with id {ref}")
        return env
    return environment_by_partition(session, ref.replace("/", ".", 1))


def resolve_workspace(session: Session, ref: str) -> Workspace:
    """Accept a workspace id or slug."""
    ws = (
        session.get(Workspace, int(ref))
        if ref.isdigit()
        else session.scalars(select(Workspace).where(Workspace.slug == ref)).first()
    )
    if ws is None:
        raise TenancyError(f"no workspace {ref!r}")
    return ws


def _owned(session: Session, model: Any, row_id: int, env: ManagedEnvironment, what: str) -> Any:
    """Row ``row_id`` of ``model`` if it belongs to this environment (and its workspace);
    ``TenancyError`` naming ``what`` otherwise."""
    row = session.get(model, row_id)
    if row is None or (row.managed_environment_id, row.workspace_id) != (
        env.id,
        env.workspace_id,
    ):
        others = session.scalars(
            select(model)
            .where(model.managed_environment_id == env.id, model.workspace_id == env.workspace_id)
            .order_by(model.id)
        ).all()
        listed = ", ".join(f"{o.id} ({o.name})" for o in others) or "none"
        raise TenancyError(f"{env.partition_key} has no {what} {row_id} (it has: {listed})")
    return row


def environment_profile(
    session: Session, env: ManagedEnvironment, profile_id: int
) -> BaselineProfile:
    """The baseline profile ``profile_id`` of this environment; raises ``TenancyError``
    when there is none (or it belongs to another environment)."""
    profile: BaselineProfile = _owned(session, BaselineProfile, profile_id, env, "baseline profile")
    return profile


def environment_schedules(session: Session, env: ManagedEnvironment) -> Sequence[BackupSchedule]:
    """The backup schedules of this environment, by id."""
    return session.scalars(
        select(BackupSchedule)
        .where(
            BackupSchedule.managed_environment_id == env.id,
            BackupSchedule.workspace_id == env.workspace_id,
        )
        .order_by(BackupSchedule.id)
    ).all()


def environment_schedule(
    session: Session, env: ManagedEnvironment, schedule_id: int
) -> BackupSchedule:
    """The backup schedule ``schedule_id`` of this environment; raises ``TenancyError``
    when there is none (or it belongs to another environment)."""
    schedule: BackupSchedule = _owned(session, BackupSchedule, schedule_id, env, "backup schedule")
    return schedule
