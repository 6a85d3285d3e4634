"""The ``opsrecon`` command line: the root command and its global options; each command
group lives in a module of its own (``cli/runs.py``, ``cli/operations.py``, ``cli/db.py``,
``cli/reconcile.py``, ``cli/demo.py``, ``cli/reviews.py``, ``cli/access.py``,
``cli/environments.py``) and is
registered here.

User mistakes (bad URL, unknown id, unmigrated database, unreachable server) end with a
one-line ``error:`` message and exit code 2, never a traceback. Commands that talk to
Dagster import it inside the command, so that the others (and ``--help``) start fast.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import click

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.cli.access import access
from opsrecon_dagster.cli.common import user_errors
from opsrecon_dagster.cli.db import db
from opsrecon_dagster.cli.demo import demo_command
from opsrecon_dagster.cli.environments import environments
from opsrecon_dagster.cli.operations import operations
from opsrecon_dagster.cli.reconcile import reconcile_command
from opsrecon_dagster.cli.reviews import reviews
from opsrecon_dagster.cli.runs import runs
from opsrecon_dagster.operations.reasons import LANGUAGES, parse_language
from opsrecon_dagster.settings import Settings


class _RootGroup(click.Group):
    """The root command: a usage mistake (unknown option, bad value, missing argument) is
    one ``error:`` line and exit code 2, like every other user error."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "opsrecon"
            click.echo(f"error: {exc.format_message()} (see `{where} --help`)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort as exc:
            interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
            click.echo("interrupted" if interrupted else "aborted", err=True)
            sys.exit(130 if interrupted else 1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_RootGroup)
@click.option(
    "--database-url",
    envvar="OPSRECON_DATABASE_URL",
    default=None,
    help="Application database URL (default: SQLite file data/opsrecon.sqlite3).",
)
@click.option(
    "--lang",
    "language",
    envvar="OPSRECON_LANGUAGE",
    type=click.Choice(LANGUAGES, case_sensitive=False),
    default=None,
    help="Message language (default: en). Reason codes are printed beside every message.",
)
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, language: str | None) -> None:
    """Prove the outcome of background operations from the artifacts they produced."""
    with user_errors():
        settings = Settings.from_env()
        settings = replace(
            settings,
            database_url=database_url or settings.database_url,
            language=parse_language(language) if language else settings.language,
        )
        app = AppContext(settings)
    ctx.obj = app
    ctx.call_on_close(app.dispose)


# Each group or command is defined in its own module; `--help` lists them by name.
for command in (
    db,
    runs,
    operations,
    reconcile_command,
    demo_command,
    reviews,
    access,
    environments,
):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    try:
        cli(standalone_mode=True, prog_name="opsrecon")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
