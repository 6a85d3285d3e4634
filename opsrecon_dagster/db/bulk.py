"""Batch statements whose text does not depend on the batch.

On PostgreSQL a batch's per-row values travel as one array parameter per column and become
rows again through ``unnest``: one statement, compiled once and planned as a join, whatever
the batch size. SQLite has no arrays; there they travel as one JSON text parameter (a list
of rows, each value already in the form the column's type binds it) and become rows again
through ``json_each``: the same one statement whatever the batch, evaluated in-process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, ColumnElement, Table, Text, any_, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine

from opsrecon_dagster.db.engine import json_text
from opsrecon_dagster.db.models import Base

Columns = Mapping[str, tuple[Sequence[object], TypeEngine[Any]]]


def arrays_supported(session: Session) -> bool:
    """True when the session's database takes array parameters (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"


def unnest(columns: Columns) -> TableValuedAlias:
    """Rows from one array parameter per column, each typed like its target column:
    ``unnest(:v_a, :v_b, ...) AS anon(a, b, ...)`` (PostgreSQL)."""
    arrays = []
    for name, (items, typed) in columns.items():
        # A JSON column's array must be an array of JSON values, not one JSON array.
        element: TypeEngine[Any] = JSONB() if isinstance(typed, JSON) else typed
        arrays.append(bindparam(f"v_{name}", list(items), type_=ARRAY(element)))
    return func.unnest(*arrays).table_valued(*columns).render_derived()


def json_rows(dialect: Dialect, columns: Columns) -> FromClause:
    """Rows from one JSON text parameter (SQLite): ``SELECT json_extract(value, '$[0]') AS a,
    ... FROM json_each(:v_rows)``. Each value is first put in the form its column's type
    binds it (a datetime's text, a JSON column's encoded text), so what is stored is exactly
    what binding it as a parameter would store."""
    processed: list[list[Any]] = []
    for items, typed in columns.values():
        process = typed.dialect_impl(dialect).bind_processor(dialect)
        processed.append([process(v) for v in items] if process is not None else list(items))
    payload = json_text([list(row) for row in zip(*processed, strict=True)])
    each = func.json_each(bindparam("v_rows", payload, type_=Text)).table_valued("value")
    return select(
        *(func.json_extract(each.c.value, f"$[{i}]").label(name) for i, name in enumerate(columns))
    ).subquery()


def rows_of(session: Session, columns: Columns) -> FromClause:
    """The batch's rows as a table to join or select from, in the form the session's
    database takes best (``unnest`` on PostgreSQL, ``json_each`` on SQLite)."""
    if arrays_supported(session):
        return unnest(columns)
    return json_rows(session.get_bind().dialect, columns)


def one_of(
    session: Session,
    column: ColumnElement[Any] | QueryableAttribute[Any],
    values: Iterable[Any],
) -> ColumnElement[bool]:
    """``column IN values`` (integers or strings) with the values in one parameter, so the
    statement text does not grow with them and is compiled once: ``= ANY(:array)`` on
    PostgreSQL, ``IN (SELECT value FROM json_each(:json))`` on SQLite."""
    items = list(values)
    expr = column.__clause_element__() if isinstance(column, QueryableAttribute) else column
    if arrays_supported(session):
        return expr == any_(bindparam(None, items, type_=ARRAY(expr.type)))
    each = func.json_each(bindparam(None, json_text(items), type_=Text)).table_valued("value")
    return expr.in_(select(each.c.value))


def insert_rows(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows of ``model`` that all have the same keys, in one statement."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    if not arrays_supported(session):
        # A multi-row executemany costs no round trips in-process (measured: no slower
        # than one ``json_each`` INSERT ... SELECT).
        session.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    values = unnest({name: ([row[name] for row in rows], table.c[name].type) for name in names})
    session.execute(insert(table).from_select(names, select(*(values.c[n] for n in names))))
