"""Database URLs, engines and sessions for the application database.

One driver on PostgreSQL: psycopg2, the one dagster-postgres already brings. Users paste
``postgres://``, ``postgresql://`` or ``postgresql+psycopg2://``; all three mean the same here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic_core
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DATA_DIR = Path("data")
DEFAULT_SQLITE_FILE = "opsrecon.sqlite3"


def json_text(value: Any) -> str:
    """JSON text of a stored JSON value: compact, UTF-8, by pydantic-core's encoder (about
    four times faster than ``json.dumps``; the reconciler writes three documents per
    decision). Every value stored is already JSON-ready (``mode="json"`` dumps)."""
    return pydantic_core.to_json(value).decode()


class DatabaseUrlError(ValueError):
    """The configured database URL cannot be used; the message never echoes a password."""


def default_database_url(data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """The embedded default: a SQLite file in the local data folder."""
    return f"sqlite:///{(data_dir / DEFAULT_SQLITE_FILE).as_posix()}"


def normalize_url(raw: str) -> URL:
    """Parse a user-supplied URL and pin the PostgreSQL driver to psycopg2."""
    text = raw.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        url = make_url(text)
    except ArgumentError:
        raise DatabaseUrlError(
            "database URL is not valid (expected sqlite:///path or postgresql://user@host/db)"
        ) from None
    backend = url.get_backend_name()
    driver = url.get_driver_name()
    if backend == "postgresql":
        if driver not in ("psycopg2", "psycopg2cffi") and "+" in url.drivername:
            raise DatabaseUrlError(
                f"PostgreSQL driver {driver!r} is not supported; use postgresql:// (psycopg2)"
            )
        return url.set(drivername="postgresql+psycopg2")
    if backend == "sqlite":
        return url
    raise DatabaseUrlError(f"unsupported database backend {backend!r} (use sqlite or postgresql)")


def describe_url(url: URL) -> str:
    """A printable form of the URL with the password hidden."""
    return url.render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def sqlite_file(url: URL) -> Path | None:
    """The file of a file-backed SQLite URL; None for PostgreSQL and in-memory SQLite."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def make_engine(url: str | URL) -> Engine:
    """Create an engine for the application database (SQLite file or PostgreSQL)."""
    parsed = url if isinstance(url, URL) else normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                raise DatabaseUrlError(
                    f"cannot create the folder {path.parent} for the SQLite database"
                ) from None
        engine = create_engine(parsed, connect_args={"timeout": 30}, json_serializer=json_text)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        parsed, pool_pre_ping=True, pool_size=5, max_overflow=10, json_serializer=json_text
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit, so services can return rows."""
    return sessionmaker(engine, expire_on_commit=False)
