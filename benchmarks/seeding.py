"""What the benchmarks share: a migrated application database with one workspace and its
environments, and bulk inserts in chunks."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import DBAPIError

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db import migrate
from opsrecon_dagster.settings import Settings
from opsrecon_dagster.tenancy import get_or_create_environment, get_or_create_workspace

CHUNK = 20_000
# Run as `python benchmarks/<name>.py` from a clone: the repository root holds the test
# package whose doubles the benchmarks share (it is not installed).
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
Row = dict[str, object]


def bench_app(url: str | None, name: str) -> AppContext:
    """The database at ``url`` (default: a fresh temporary SQLite file), migrated."""
    app = AppContext(Settings(database_url=url or f"sqlite:///{Path(tempfile.mkdtemp()) / name}"))
    migrate.upgrade(app.engine)
    return app


def bench_scopes(app: AppContext, environments: int) -> list[tuple[int, int]]:
    """(workspace id, environment id) of ``environments`` environments in workspace bench."""
    with app.sessions.begin() as s:
        ws = get_or_create_workspace(s, "bench")
        envs = [get_or_create_environment(s, ws, f"env-{i}") for i in range(environments)]
        return [(ws.id, e.id) for e in envs]


def bulk_insert(app: AppContext, table: Any, rows: Iterable[Row]) -> None:
    """Insert rows in chunks of ``CHUNK``, one transaction per chunk."""
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            with app.engine.begin() as conn:
                conn.execute(insert(table), batch)
            batch = []
    if batch:
        with app.engine.begin() as conn:
            conn.execute(insert(table), batch)


def settle(app: AppContext, dagster_pg_url: str | None = None) -> None:
    """Let the databases catch up with the bulk seeding before anything is measured.

    On PostgreSQL (the app database, and Dagster's storage when it is on PostgreSQL),
    ``VACUUM (ANALYZE)`` and a ``CHECKPOINT``: otherwise autovacuum and the checkpointer work
    through the freshly seeded rows during the measurement, on the same two cores, and the
    planner plans with the statistics of near-empty tables, all billed to whichever stage
    happens to run then. A database in service has long since done both. SQLite has nothing
    to settle.
    """
    urls = [app.url.render_as_string(hide_password=False), dagster_pg_url]
    for url in (u for u in urls if u and u.startswith("postgresql")):
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text("VACUUM (ANALYZE)"))
                # CHECKPOINT needs superuser or pg_checkpoint; the vacuum matters most.
                with contextlib.suppress(DBAPIError):
                    conn.execute(text("CHECKPOINT"))
        finally:
            engine.dispose()
