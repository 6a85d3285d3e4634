"""What the benchmarks share: a migrated application database with one workspace and its
environments, and bulk inserts in chunks."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from opsrecon_dagster.db import migrate
from opsrecon_dagster.settings import AppContext, Settings
from opsrecon_dagster.tenancy import get_or_create_environment, get_or_create_workspace

CHUNK = 20_000
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
