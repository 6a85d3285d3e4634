"""``opsrecon db``: the application database's schema (``db upgrade``)."""

from __future__ import annotations

import click

from opsrecon_dagster.cli.common import (
    app_of,
    user_errors,
)
from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.engine import describe_url


@click.group()
def db() -> None:
    """Application database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply migrations up to the newest schema (safe to repeat)."""
    app = app_of(ctx, migrated=False)
    with user_errors(app):
        before, after = migrate.upgrade(app.engine)
    where = describe_url(app.url)
    if before == after:
        click.echo(f"{where}: schema already at revision {after}")
    else:
        click.echo(f"{where}: upgraded {before or 'empty database'} -> {after}")
