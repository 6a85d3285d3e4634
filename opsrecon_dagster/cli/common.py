"""What every ``opsrecon`` command shares: user errors, the application context, output
(tables, wrapped lines, reasons in words with their codes).

User mistakes (bad URL, unknown id, unmigrated database, unreachable server, invalid input)
end with a one-line ``error:`` message and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from opsrecon_dagster.access import ActorError, current_actor
from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.engine import DatabaseUrlError, describe_url, sqlite_file
from opsrecon_dagster.operations.catalog import CatalogConfigError
from opsrecon_dagster.operations.lifecycle import RunNotFoundError, ScopeError
from opsrecon_dagster.operations.reasons import Language, UnknownLanguageError, message, word
from opsrecon_dagster.providers.fixture import FixtureConfigError
from opsrecon_dagster.tenancy import TenancyError

USER_ERRORS: tuple[type[Exception], ...] = (
    ActorError,
    DatabaseUrlError,
    migrate.SchemaNotCurrentError,
    RunNotFoundError,
    ScopeError,
    TenancyError,
    CatalogConfigError,
    UnknownLanguageError,
    FixtureConfigError,
)


class UserError(click.ClickException):
    """A user mistake: printed as one ``error:`` line, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


# The largest id both databases hold (a signed 64-bit integer): a larger one is no id at all.
MAX_ID = 2**63 - 1


class DatabaseId(click.ParamType[int, Any]):
    """A row id as an argument: a whole number from 1 to ``MAX_ID``, or one ``error:`` line
    with exit code 2 (never a database error, never a traceback)."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip()
            number = int(text) if text.isdigit() else -1
        if not 1 <= number <= MAX_ID:
            what = (
                param.opts[0]
                if isinstance(param, click.Option)
                else (param.human_readable_name if param is not None else "id").upper()
            )
            shown = str(value)[:30] + ("..." if len(str(value)) > 30 else "")
            raise UserError(f"{what} must be a whole number from 1 to {MAX_ID} (got {shown!r})")
        return number


DB_ID = DatabaseId()


@contextmanager
def user_errors(
    app: AppContext | None = None, also: tuple[type[Exception], ...] = ()
) -> Iterator[None]:
    """Turn known failures (and those in ``also``) into one-line errors; raw driver text is
    never printed."""
    try:
        yield
    except (*USER_ERRORS, *also) as exc:
        raise UserError(str(exc)) from None
    except ValidationError as exc:
        raise UserError(validation_message(exc)) from None
    except OperationalError:
        where = describe_url(app.url) if app is not None else "the application database"
        raise UserError(
            f"cannot use the application database at {where} (is it reachable and writable?)"
        ) from None
    except SQLAlchemyError as exc:
        raise UserError(f"database error ({type(exc).__name__})") from None


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as one line: where and what (never the offending value)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "value"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid input: {where}: {first['msg']}{more}"


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON (the ``--json`` output of every command)."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def output_width() -> int | None:
    """Columns to lay output out for: ``$COLUMNS`` when set, else the terminal's (None: let
    the console ask it), else 100 (pipes, files, tests)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) >= 20:
        return int(columns)
    return None if sys.stdout.isatty() else 100


def console() -> Console:
    """Where tables go: the terminal's width and colours on a TTY; 100 columns (or
    ``$COLUMNS``) and no colour otherwise (pipes, files, tests)."""
    tty = sys.stdout.isatty()
    return Console(
        width=output_width(),
        no_color=not tty,
        color_system="auto" if tty else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
    )


def table(*columns: str, wrap: tuple[str, ...] = (), language: Language = "en") -> Table:
    """A plain table; only the columns named in ``wrap`` may wrap (the others never do).
    Columns are named by their English header; ``language`` chooses the header shown."""
    t = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        header_style="bold",
    )
    for name in columns:
        shown = word(name, language)
        t.add_column(shown, no_wrap=name not in wrap, overflow="fold", min_width=len(shown))
    return t


def packed_lines(tokens: list[str], width: int, indent: int = 0) -> list[str]:
    """Tokens joined by two spaces into lines of at most ``width`` columns, broken only
    between tokens: an id, a code or a name is never split (a token longer than a line
    stands alone on its line)."""
    lines: list[str] = []
    line = ""
    for token in (t for t in tokens if t):
        candidate = f"{line}  {token}" if line else " " * indent + token
        if line and len(candidate) > width:
            lines.append(line)
            candidate = " " * indent + token
        line = candidate
    if line:
        lines.append(line)
    return lines


def cells(*values: object) -> list[Text]:
    """Table cells as plain text (data is never read as markup)."""
    return [Text("-" if v is None or v == "" else str(v)) for v in values]


def acting_actor() -> str:
    """Who runs this command (``OPSRECON_ACTOR``, else the OS user), read now; an unusable
    name is one ``error:`` line before anything is written."""
    with user_errors():
        return current_actor()


def by_whom(actor: str, acted_by: str | None) -> str:
    """The role that acted, with the name of the person whose command it was, if any."""
    return f"{actor} ({acted_by})" if acted_by else actor


def app_of(ctx: click.Context, *, migrated: bool = True) -> AppContext:
    """The application context; ``migrated``: the database must exist and be current.

    Only ``db upgrade`` creates a database: a SQLite file that does not exist is an error
    here, before anything (file or folder) is created."""
    app: AppContext = ctx.obj
    if migrated:
        path = sqlite_file(app.url)
        if path is not None and not path.exists():
            raise UserError(
                f"the application database {describe_url(app.url)} does not exist; "
                "run `opsrecon db upgrade` first"
            )
        with user_errors(app):
            migrate.ensure_current(app.engine)
    return app


def print_reason_legend(codes: list[str | None], language: Language) -> None:
    """Each distinct reason code of a table once, with its message in ``language``."""
    seen = [c for i, c in enumerate(codes) if c and c not in codes[:i]]
    if not seen:
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for code in seen:
        grid.add_row(Text(code), Text(message(code, language)))
    out = console()
    out.print(f"{word('Reasons', language)}:")
    out.print(grid)


# Columns of the run tables that may wrap to fit 100 columns (ids and states never do).
WRAPPED = ("ENVIRONMENT",)

# `runs show` and `explain` fit this many columns (fewer in a narrower terminal).
DETAIL_WIDTH = 100


def reason_text(code: str | None, app: AppContext | Language) -> str:
    """A reason in the configured language, with its stable code beside it."""
    language = app if isinstance(app, str) else app.language
    return f"{message(code, language)} [{code}]" if code else "-"


def detail_width() -> int:
    """Columns for the detail views: the terminal's (or ``$COLUMNS``), at most 100."""
    return min(console().width, DETAIL_WIDTH)


def echo_wrapped(first: str, words: list[str], indent: int, gap: str = " ") -> None:
    """``first``, then the words joined by ``gap``, broken only between words within the
    width (an id, a code or a URL is never split); continuation lines start at ``indent``."""
    width, line = detail_width(), first
    for token in words:
        candidate = f"{line}{gap}{token}" if line.strip() else f"{line}{token}"
        if len(candidate) > width and line.strip():
            click.echo(line)
            line = " " * indent + token
        else:
            line = candidate
    click.echo(line)
