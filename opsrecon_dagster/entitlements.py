"""Workspace entitlements: which declared actor may read or act in which workspace.

Plain Python (no Dagster). Optional and off by default: while ``access_grants`` is empty,
every actor may use every workspace, as before. Once one grant exists (anywhere), an actor
(``access.current_actor``) reads a workspace's runs and reviews only with a ``viewer`` or
``operator`` grant on it, and acts there (starts, launches, reconciles, moves reviews, grants)
only with ``operator``. Grants, revokes and refusals are rows in ``access_events``.

The actor name is declared, not proven (``OPSRECON_ACTOR``): this keeps the people sharing an
operator host and its service login within their workspaces, against mistakes and casual
overreach; it does not stand against someone who sets another name, nor against a database
login that writes the tables directly (README, "Workspace entitlements").

Grant rules (``grant``, ``revoke``):

- while no grant exists, the only grant accepted is the actor's own ``operator`` grant, so
  that whoever turns entitlements on keeps acting;
- a grant or revoke on a workspace needs an ``operator`` grant on it; on a workspace that has
  no grant yet, an actor holding ``operator`` on another workspace may give themselves the
  first one (nobody else can use that workspace meanwhile);
- a workspace keeps an operator while it has grants: revoking (or demoting to ``viewer``) its
  last operator is refused while other grants on it remain;
- revoking the very last grant turns entitlements off again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.access import check_actor
from opsrecon_dagster.db.models import AccessEvent, AccessGrant, Workspace, utcnow

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
# What a role allows: an operator reads as well.
_RANK: dict[str, int] = {"viewer": 1, "operator": 2}

GRANTED = "access.granted"
REVOKED = "access.revoked"
REFUSED = "access.refused"


class AccessDetails(BaseModel):
    """The bounded details of one ``access_events`` row: names, codes and ids, never data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(max_length=64)  # e.g. "runs show", "access grant"
    needed: Role | None = None  # refusals: the role the command needs on the workspace
    held: Role | None = None  # refusals: the role the actor holds there, if any
    target: str | None = Field(default=None, max_length=64)  # e.g. "run 12", "review 3"
    grantee: str | None = Field(default=None, max_length=128)  # grants and revokes
    role: Role | None = None  # grants: the role given; revokes: the role taken away
    previous_role: Role | None = None  # a grant that changed an existing one


class GrantError(ValueError):
    """A grant, revoke or role the rules do not allow; the message says which and why."""


class AccessRefused(PermissionError):
    """The actor lacks the role a command needs on a workspace. Carries what the refusal
    row records (``record_refusal`` writes it in a transaction of its own)."""

    def __init__(self, acted_by: str, workspace_id: int, details: AccessDetails, text: str) -> None:
        super().__init__(text)
        self.acted_by = acted_by
        self.workspace_id = workspace_id
        self.details = details


@dataclass(frozen=True)
class GrantRow:
    """One grant as ``access list`` shows it."""

    actor: str
    workspace_id: int
    workspace_slug: str
    role: Role
    granted_by: str
    granted_at: str


def parse_role(value: str) -> Role:
    """``viewer`` or ``operator`` (any case); ``GrantError`` otherwise."""
    lowered = value.strip().lower()
    if lowered not in _RANK:
        raise GrantError(f"unknown role {value!r} (roles: {', '.join(ROLES)})")
    return cast(Role, lowered)


def entitlements_on(session: Session) -> bool:
    """Whether any grant exists (then every read and action is checked)."""
    return session.scalar(select(AccessGrant.id).limit(1)) is not None


def role_on(session: Session, actor: str, workspace_id: int) -> Role | None:
    """The actor's role on the workspace, or None."""
    role = session.scalar(
        select(AccessGrant.role).where(
            AccessGrant.actor == actor, AccessGrant.workspace_id == workspace_id
        )
    )
    return cast(Role, role) if role is not None else None


def allows(held: Role | None, needed: Role) -> bool:
    """Whether holding ``held`` is enough for a command that needs ``needed``."""
    return held is not None and _RANK[held] >= _RANK[needed]


def readable_workspaces(session: Session, actor: str) -> frozenset[int] | None:
    """The workspaces the actor may read (a viewer or operator grant), or None when
    entitlements are off (every workspace)."""
    if not entitlements_on(session):
        return None
    return frozenset(
        session.scalars(select(AccessGrant.workspace_id).where(AccessGrant.actor == actor))
    )


def _slug(session: Session, workspace_id: int) -> str:
    return session.scalar(select(Workspace.slug).where(Workspace.id == workspace_id)) or str(
        workspace_id
    )


def check(
    session: Session,
    actor: str,
    workspace_ids: Iterable[int],
    needed: Role,
    command: str,
    target: str | None = None,
) -> None:
    """``AccessRefused`` for the first workspace (lowest id) where the actor lacks ``needed``;
    nothing when entitlements are off. Writes nothing (see ``record_refusal``)."""
    if not entitlements_on(session):
        return
    for workspace_id in sorted(set(workspace_ids)):
        held = role_on(session, actor, workspace_id)
        if not allows(held, needed):
            raise refusal(session, actor, workspace_id, needed, held, command, target)


def refusal(
    session: Session,
    actor: str,
    workspace_id: int,
    needed: Role,
    held: Role | None,
    command: str,
    target: str | None = None,
) -> AccessRefused:
    """The refusal of ``command`` to ``actor`` on the workspace, with its one-line message."""
    what = f"`{command}` ({target})" if target else f"`{command}`"
    has = f"holds {held}" if held else "holds no grant there"
    text = (
        f"access refused: {actor} needs the {needed} role on workspace "
        f"{_slug(session, workspace_id)!r} for {what} ({has}; see `opsrecon access list`)"
    )
    details = AccessDetails(command=command, needed=needed, held=held, target=target)
    return AccessRefused(actor, workspace_id, details, text)


def record_refusal(sessions: sessionmaker[Session], refused: AccessRefused) -> None:
    """Write the refusal's ``access.refused`` row, committed on its own (the refused
    command writes nothing else)."""
    with sessions.begin() as session:
        _event(session, REFUSED, refused.acted_by, refused.workspace_id, refused.details)


def _event(
    session: Session, action: str, acted_by: str, workspace_id: int, details: AccessDetails
) -> None:
    session.add(
        AccessEvent(
            workspace_id=workspace_id,
            action=action,
            acted_by=acted_by,
            details=details.model_dump(mode="json", exclude_none=True),
        )
    )


def _operators(session: Session, workspace_id: int) -> list[str]:
    return list(
        session.scalars(
            select(AccessGrant.actor).where(
                AccessGrant.workspace_id == workspace_id, AccessGrant.role == "operator"
            )
        )
    )


def _grant_count(session: Session, workspace_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(AccessGrant)
            .where(AccessGrant.workspace_id == workspace_id)
        )
        or 0
    )


def _may_administer(session: Session, actor: str, workspace_id: int, command: str) -> None:
    """Raise ``AccessRefused`` unless the actor holds operator on the workspace."""
    held = role_on(session, actor, workspace_id)
    if not allows(held, "operator"):
        raise refusal(session, actor, workspace_id, "operator", held, command)


def grant(
    session: Session, acted_by: str, grantee: str, workspace_id: int, role: Role
) -> Role | None:
    """Give ``grantee`` the role on the workspace (replacing the role they held there, which
    is returned); writes an ``access.granted`` row. ``GrantError`` for a grant the rules do
    not allow, ``AccessRefused`` when ``acted_by`` may not grant there (module docstring)."""
    check_actor(grantee, "ACTOR")
    slug = _slug(session, workspace_id)
    if not entitlements_on(session):
        if grantee != acted_by or role != "operator":
            raise GrantError(
                "no grant exists yet: the first one must be your own operator grant "
                f"(`opsrecon access grant {acted_by} {slug} --role operator`), so that you "
                "keep acting once entitlements are on"
            )
    elif _grant_count(session, workspace_id) == 0:
        if (
            session.scalar(
                select(AccessGrant.id)
                .where(AccessGrant.actor == acted_by, AccessGrant.role == "operator")
                .limit(1)
            )
            is None
        ):
            raise refusal(session, acted_by, workspace_id, "operator", None, "access grant")
        if grantee != acted_by or role != "operator":
            raise GrantError(
                f"workspace {slug!r} has no grant yet: its first one must be your own operator "
                f"grant (`opsrecon access grant {acted_by} {slug} --role operator`)"
            )
    else:
        _may_administer(session, acted_by, workspace_id, "access grant")
    existing = session.scalar(
        select(AccessGrant).where(
            AccessGrant.actor == grantee, AccessGrant.workspace_id == workspace_id
        )
    )
    previous = cast(Role, existing.role) if existing is not None else None
    if (
        previous == "operator"
        and role != "operator"
        and _operators(session, workspace_id) == [grantee]
    ):
        raise GrantError(
            f"{grantee} is the last operator of workspace {slug!r}: grant another operator first"
        )
    if existing is None:
        session.add(
            AccessGrant(actor=grantee, workspace_id=workspace_id, role=role, granted_by=acted_by)
        )
    else:
        existing.role, existing.granted_by, existing.granted_at = role, acted_by, utcnow()
    details = AccessDetails(
        command="access grant", grantee=grantee, role=role, previous_role=previous
    )
    _event(session, GRANTED, acted_by, workspace_id, details)
    return previous


def revoke(session: Session, acted_by: str, grantee: str, workspace_id: int) -> bool:
    """Take ``grantee``'s grant on the workspace away; writes an ``access.revoked`` row.
    Returns whether entitlements are still on (False: that was the last grant). Refuses
    (``GrantError``) a grant that does not exist and a workspace's last operator while
    other grants on it remain; ``AccessRefused`` unless ``acted_by`` is its operator."""
    check_actor(grantee, "ACTOR")
    slug = _slug(session, workspace_id)
    if not entitlements_on(session):
        raise GrantError("no grant exists (entitlements are off): nothing to revoke")
    _may_administer(session, acted_by, workspace_id, "access revoke")
    existing = session.scalar(
        select(AccessGrant).where(
            AccessGrant.actor == grantee, AccessGrant.workspace_id == workspace_id
        )
    )
    if existing is None:
        raise GrantError(f"{grantee} holds no grant on workspace {slug!r}")
    role = cast(Role, existing.role)
    others = _grant_count(session, workspace_id) - 1
    if role == "operator" and _operators(session, workspace_id) == [grantee] and others:
        raise GrantError(
            f"{grantee} is the last operator of workspace {slug!r}, which has {others} other "
            "grant(s): revoke those first, or grant another operator"
        )
    session.execute(delete(AccessGrant).where(AccessGrant.id == existing.id))
    details = AccessDetails(command="access revoke", grantee=grantee, role=role)
    _event(session, REVOKED, acted_by, workspace_id, details)
    return entitlements_on(session)


def grants(
    session: Session, workspace_ids: Sequence[int] | frozenset[int] | None = None
) -> list[GrantRow]:
    """Grants by workspace slug, then actor; only of ``workspace_ids`` when given."""
    stmt: Any = (
        select(AccessGrant, Workspace.slug)
        .join(Workspace, Workspace.id == AccessGrant.workspace_id)
        .order_by(Workspace.slug, AccessGrant.actor)
    )
    if workspace_ids is not None:
        stmt = stmt.where(AccessGrant.workspace_id.in_(sorted(workspace_ids)))
    return [
        GrantRow(
            actor=g.actor,
            workspace_id=g.workspace_id,
            workspace_slug=slug,
            role=cast(Role, g.role),
            granted_by=g.granted_by,
            granted_at=g.granted_at.isoformat(),
        )
        for g, slug in session.execute(stmt).all()
    ]


@dataclass(frozen=True)
class EventRow:
    """One ``access_events`` row as ``access events`` shows it."""

    id: int
    created_at: str
    workspace_slug: str
    action: str
    acted_by: str
    details: dict[str, Any]

    def summary(self) -> str:
        """What happened, in one line: the command and roles (refusals), or who got which
        role (grants and revokes)."""
        d = self.details
        if self.action == REFUSED:
            held = d.get("held") or "no grant"
            target = f" ({d['target']})" if d.get("target") else ""
            return f"`{d.get('command')}`{target} needs {d.get('needed')}, held {held}"
        was = f" (was {d['previous_role']})" if d.get("previous_role") else ""
        return f"{d.get('grantee')} {d.get('role')}{was}"


def events(
    session: Session, workspace_ids: Sequence[int] | frozenset[int] | None, limit: int
) -> list[EventRow]:
    """The newest ``limit`` grants, revokes and refusals, newest first; only of
    ``workspace_ids`` when given."""
    stmt: Any = (
        select(AccessEvent, Workspace.slug)
        .join(Workspace, Workspace.id == AccessEvent.workspace_id)
        .order_by(AccessEvent.id.desc())
        .limit(limit)
    )
    if workspace_ids is not None:
        stmt = stmt.where(AccessEvent.workspace_id.in_(sorted(workspace_ids)))
    return [
        EventRow(
            id=e.id,
            created_at=e.created_at.isoformat(),
            workspace_slug=slug,
            action=e.action,
            acted_by=e.acted_by,
            details=dict(e.details),
        )
        for e, slug in session.execute(stmt).all()
    ]
