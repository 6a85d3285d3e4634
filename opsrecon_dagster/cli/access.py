"""``opsrecon access``: workspace entitlements (grant, revoke, list), and the checks every
other command makes with them (``require``, ``readable``).

Off by default: while no grant exists, every command behaves as without this module (and
reads no actor name). Once one exists, a command outside the actor's grants is refused with
one ``error:`` line, exit code 2, and an ``access.refused`` row (``entitlements``).
"""

from __future__ import annotations

from collections.abc import Iterable

import click

from opsrecon_dagster import entitlements
from opsrecon_dagster.app import AppContext
from opsrecon_dagster.cli.common import (
    UserError,
    acting_actor,
    app_of,
    cells,
    console,
    emit_json,
    table,
    user_errors,
)
from opsrecon_dagster.entitlements import AccessRefused, GrantError, Role
from opsrecon_dagster.tenancy import resolve_workspace

ACCESS_ERRORS = (GrantError,)


def refused(app: AppContext, exc: AccessRefused) -> UserError:
    """Record the refusal (its own transaction) and return the one-line error to raise."""
    with user_errors(app):
        entitlements.record_refusal(app.sessions, exc)
    return UserError(str(exc))


def require(
    app: AppContext,
    workspace_ids: Iterable[int],
    needed: Role,
    command: str,
    target: str | None = None,
) -> None:
    """Nothing when entitlements are off or the actor holds ``needed`` on every workspace
    given; else the refusal is recorded and raised as one ``error:`` line (exit 2)."""
    ids = list(workspace_ids)
    with user_errors(app), app.sessions() as session:
        if not entitlements.entitlements_on(session):
            return
    actor = acting_actor()
    try:
        with user_errors(app), app.sessions() as session:
            entitlements.check(session, actor, ids, needed, command, target)
    except AccessRefused as exc:
        raise refused(app, exc) from None


def listing_scope(
    app: AppContext, named: Iterable[int | None], command: str, what: str
) -> frozenset[int] | None:
    """The workspaces a listing may show beyond what it names: when it names workspaces
    (``named``: its ``--workspace``, an ``--environment``'s workspace), the actor must read
    each (else refused, as ``require``) and nothing more is filtered (None); otherwise
    ``readable`` (the actor's workspaces, or None when entitlements are off)."""
    ids = {i for i in named if i is not None}
    if ids:
        require(app, ids, "viewer", command)
        return None
    return readable(app, what)


def workspace_listing(
    app: AppContext, workspace: str | None, command: str, what: str
) -> tuple[int | None, frozenset[int] | None]:
    """A listing's ``--workspace`` (id or slug) resolved, and ``listing_scope`` of it:
    (the named workspace's id or None, the workspaces it may show beyond that)."""
    with user_errors(app), app.sessions() as session:
        ws_id = resolve_workspace(session, workspace).id if workspace else None
    return ws_id, listing_scope(app, [ws_id], command, what)


def readable(app: AppContext, what: str) -> frozenset[int] | None:
    """The workspaces whose rows a listing may show: None when entitlements are off (all);
    else the actor's granted workspaces, said in one line on stderr (``what``: "runs")."""
    with user_errors(app), app.sessions() as session:
        if not entitlements.entitlements_on(session):
            return None
    actor = acting_actor()
    with user_errors(app), app.sessions() as session:
        ids = entitlements.readable_workspaces(session, actor) or frozenset()
        slugs = sorted(
            r.workspace_slug for r in entitlements.grants(session, ids) if r.actor == actor
        )
    shown = ", ".join(slugs) if slugs else "none (ask an operator for a grant)"
    click.echo(f"note: {what} of the workspaces {actor} may read only: {shown}", err=True)
    return ids


@click.group()
def access() -> None:
    """Workspace entitlements: who may read or act in which workspace (off while none exist)."""


@access.command("grant")
@click.argument("actor")
@click.argument("workspace")
@click.option(
    "--role",
    type=click.Choice(entitlements.ROLES, case_sensitive=False),
    default=None,
    help="Required. viewer: reads the workspace's runs and reviews; "
    "operator: also acts and grants.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def access_grant(
    ctx: click.Context, actor: str, workspace: str, role: str | None, as_json: bool
) -> None:
    """Give ACTOR a role on WORKSPACE (id or slug); the first grant turns entitlements on."""
    if role is None:  # checked here: click's own message for a choice spans several lines
        raise UserError("--role is required: viewer or operator")
    app = app_of(ctx)
    by = acting_actor()
    parsed = entitlements.parse_role(role)
    try:
        with user_errors(app, ACCESS_ERRORS), app.sessions.begin() as session:
            ws = resolve_workspace(session, workspace)
            slug = ws.slug
            previous = entitlements.grant(session, by, actor, ws.id, parsed)
    except AccessRefused as exc:
        raise refused(app, exc) from None
    if as_json:
        emit_json({"actor": actor, "workspace": slug, "role": parsed, "previous_role": previous})
        return
    was = f" (was {previous})" if previous else ""
    click.echo(f"{actor} is {parsed} on workspace {slug}{was}")


@access.command("revoke")
@click.argument("actor")
@click.argument("workspace")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def access_revoke(ctx: click.Context, actor: str, workspace: str, as_json: bool) -> None:
    """Take ACTOR's grant on WORKSPACE away; revoking the last grant turns entitlements off."""
    app = app_of(ctx)
    by = acting_actor()
    try:
        with user_errors(app, ACCESS_ERRORS), app.sessions.begin() as session:
            ws = resolve_workspace(session, workspace)
            slug = ws.slug
            still_on = entitlements.revoke(session, by, actor, ws.id)
    except AccessRefused as exc:
        raise refused(app, exc) from None
    if as_json:
        emit_json({"actor": actor, "workspace": slug, "entitlements_on": still_on})
        return
    click.echo(f"{actor} holds no grant on workspace {slug} any more")
    if not still_on:
        click.echo("no grant remains: entitlements are off (every actor may use every workspace)")


@access.command("list")
@click.option("--workspace", default=None, help="Only this workspace (id or slug).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def access_list(ctx: click.Context, workspace: str | None, as_json: bool) -> None:
    """The grants (of the workspaces the actor may read, once entitlements are on)."""
    app = app_of(ctx)
    ws_id, allowed = workspace_listing(app, workspace, "access list", "grants")
    with user_errors(app), app.sessions() as session:
        on = entitlements.entitlements_on(session)
    with user_errors(app), app.sessions() as session:
        ids = [ws_id] if ws_id is not None else allowed
        rows = entitlements.grants(session, ids)
    if as_json:
        emit_json({"entitlements_on": on, "grants": [r.__dict__ for r in rows]})
        return
    if not on:
        click.echo("no grants: entitlements are off (every actor may use every workspace)")
        return
    if not rows:
        click.echo("no grants to show")
        return
    out = table("WORKSPACE", "ACTOR", "ROLE", "GRANTED BY", "GRANTED AT")
    for r in rows:
        out.add_row(
            *cells(
                r.workspace_slug, r.actor, r.role, r.granted_by, r.granted_at[:19].replace("T", " ")
            )
        )
    console().print(out)


@access.command("events")
@click.option("--workspace", default=None, help="Only this workspace (id or slug).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def access_events(ctx: click.Context, workspace: str | None, limit: int, as_json: bool) -> None:
    """Grants, revokes and refusals, newest first (of the workspaces the actor may read)."""
    app = app_of(ctx)
    ws_id, allowed = workspace_listing(app, workspace, "access events", "access events")
    with user_errors(app), app.sessions() as session:
        rows = entitlements.events(session, [ws_id] if ws_id is not None else allowed, limit)
    if as_json:
        emit_json([r.__dict__ for r in rows])
        return
    if not rows:
        click.echo("no access events")
        return
    out = table("AT", "WORKSPACE", "ACTION", "BY", "WHAT", wrap=("WHAT",))
    for r in rows:
        at = r.created_at[:16].replace("T", " ")
        out.add_row(*cells(at, r.workspace_slug, r.action, r.acted_by, r.summary()))
    console().print(out)
