"""Batch statements whose text does not depend on the batch.

On PostgreSQL a batch's per-row values travel as one array parameter per column and become
rows again through ``unnest``: one statement, compiled once and planned as a join, whatever
the batch size. SQLite has no arrays; there the callers use forms that cost no round trips
in-process (multi-row ``INSERT``, ``CASE`` by id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine

from opsrecon_dagster.db.models import Base


def arrays_supported(session: Session) -> bool:
    """True when the session's database takes array parameters (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"


def unnest(columns: Mapping[str, tuple[Sequence[object], TypeEngine[Any]]]) -> TableValuedAlias:
    """Rows from one array parameter per column, each typed like its target column:
    ``unnest(:v_a, :v_b, ...) AS anon(a, b, ...)`` (PostgreSQL)."""
    arrays = []
    for name, (items, typed) in columns.items():
        # A JSON column's array must be an array of JSON values, not one JSON array.
        element: TypeEngine[Any] = JSONB() if isinstance(typed, JSON) else typed
        arrays.append(bindparam(f"v_{name}", list(items), type_=ARRAY(element)))
    return func.unnest(*arrays).table_valued(*columns).render_derived()


def insert_rows(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows of ``model`` that all have the same keys, in one statement."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    if not arrays_supported(session):
        session.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    values = unnest({name: ([row[name] for row in rows], table.c[name].type) for name in names})
    session.execute(insert(table).from_select(names, select(*(values.c[n] for n in names))))
