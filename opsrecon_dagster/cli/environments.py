"""``opsrecon environments``: the managed environments and their readiness, and the
operator's way to set it (``ready`` once consent or a permission has been granted in the
tenant, ``disabled`` for an environment that should not be managed)."""

from __future__ import annotations

import click
from sqlalchemy import select

from opsrecon_dagster.cli.access import require, workspace_listing
from opsrecon_dagster.cli.common import (
    acting_actor,
    app_of,
    cells,
    console,
    emit_json,
    table,
    user_errors,
)
from opsrecon_dagster.db.models import ManagedEnvironment
from opsrecon_dagster.tenancy import (
    OPERATOR_READINESS,
    parse_operator_readiness,
    resolve_environment,
    set_readiness_by_operator,
)


@click.group()
def environments() -> None:
    """Managed environments: their readiness, and setting it."""


@environments.command("list")
@click.option("--workspace", default=None, help="Only this workspace (id or slug).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def environments_list(ctx: click.Context, workspace: str | None, as_json: bool) -> None:
    """Every environment (of the workspaces the actor may read) with its readiness."""
    app = app_of(ctx)
    ws_id, allowed = workspace_listing(app, workspace, "environments list", "environments")
    with user_errors(app), app.sessions() as session:
        stmt = select(ManagedEnvironment).order_by(ManagedEnvironment.partition_key)
        if ws_id is not None:
            stmt = stmt.where(ManagedEnvironment.workspace_id == ws_id)
        elif allowed is not None:
            stmt = stmt.where(ManagedEnvironment.workspace_id.in_(sorted(allowed)))
        rows = [
            {
                "id": env.id,
                "environment": env.partition_key,
                "name": env.name,
                "readiness": env.readiness,
                "readiness_changed_at": env.readiness_changed_at.isoformat(),
            }
            for env in session.scalars(stmt)
        ]
    if as_json:
        emit_json(rows)
        return
    out = table("ID", "ENVIRONMENT", "NAME", "READINESS", "SINCE", wrap=("NAME",))
    for row in rows:
        since = str(row["readiness_changed_at"])[:16].replace("T", " ")
        out.add_row(*cells(row["id"], row["environment"], row["name"], row["readiness"], since))
    console().print(out)


@environments.command("readiness")
@click.argument("environment")
@click.argument("state", metavar="|".join(s.value for s in OPERATOR_READINESS).upper())
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def environments_readiness(ctx: click.Context, environment: str, state: str, as_json: bool) -> None:
    """Set ENVIRONMENT (id, partition key or workspace/environment) ready or disabled.

    After consent or a permission was granted in the tenant: `ready`, so the next runs
    call the provider again (until then they are blocked before any call). Recorded with
    who did it."""
    app = app_of(ctx)
    with user_errors(app):
        readiness = parse_operator_readiness(state)
        with app.sessions() as session:
            env = resolve_environment(session, environment)
            ws_id, key = env.workspace_id, env.partition_key
    require(app, [ws_id], "operator", "environments readiness", key)
    actor = acting_actor()
    with user_errors(app), app.sessions.begin() as session:
        env = resolve_environment(session, key)
        previous = set_readiness_by_operator(session, env, readiness, actor)
    if as_json:
        emit_json({"environment": key, "readiness": readiness.value, "previous": previous})
    elif previous is None:
        click.echo(f"{key} is already {readiness.value}; nothing changed")
    else:
        click.echo(f"{key}: readiness {previous} -> {readiness.value} (by {actor})")
