"""Reading an open run's stored fields defensively (docs/decisions.md, "Unreadable rows").

The reconciler reads every column of a candidate row as the database holds it, not through
the driver's or the ORM's conversions (which raise on a value they cannot convert, and would
fail the whole batch), checks each one here, and builds its ``RunRow`` from the checked
values.
A value the reconciler cannot use is replaced by a harmless placeholder and reported as an
``Unreadable`` (the column's name, what kind of value it was and its length; never the
value), so that row alone is finalized ``run_field_invalid``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, type_coerce
from sqlalchemy.types import NullType

from opsrecon_dagster.db.models import OperationRun

# Stored times outside this range are not times the product wrote (PostgreSQL's
# ``infinity``, a year BC, a year Python cannot represent): they would make a row never (or
# always) due, or fail date arithmetic.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

_RUN_ID = re.compile(r"[0-9a-f\-]{8,64}")  # as ``operations.context.DagsterRunId``
_TYPE = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_HASH = re.compile(r"[0-9a-z]{1,64}")
_SHORT_TEXT = 64


class _Bad(Exception):
    """A stored value that cannot be used (raised by a column's check)."""


@dataclass(frozen=True)
class Unreadable:
    """One stored field the reconciler could not use: which, of what kind, how long."""

    field: str  # a column name of ``operation_runs`` (a fixed set)
    kind: str  # missing, text, integer, number, boolean, bytes or out_of_range
    length: int  # characters of a text, bytes of a blob; 0 otherwise

    @property
    def count_key(self) -> str:
        """The evidence count that records it: ``unreadable.<field>.<kind>`` = length."""
        return f"unreadable.{self.field}.{self.kind}"


# Evidence counts are capped (``operations.context.Count``).
_MAX_COUNT = 10_000_000


def counts(fields: Sequence[Unreadable]) -> dict[str, int]:
    """The evidence counts that name unusable fields: ``unreadable.<field>.<kind>`` = the
    value's length (bounded; never the value)."""
    return {f.count_key: min(f.length, _MAX_COUNT) for f in fields}


def _kind(value: object) -> tuple[str, int]:
    if value is None:
        return "missing", 0
    if isinstance(value, bool):
        return "boolean", 0
    if isinstance(value, int):
        return "integer", 0
    if isinstance(value, float):
        return "number", 0
    if isinstance(value, str):
        return "text", len(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes", len(bytes(value))
    return "out_of_range", 0


def _id(optional: bool) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value is None and optional:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise _Bad

    return check


def _text(pattern: re.Pattern[str] | None, optional: bool) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value is None and optional:
            return None
        short = isinstance(value, str) and len(value) <= _SHORT_TEXT
        if short and (pattern is None or pattern.fullmatch(str(value))):
            return value
        raise _Bad

    return check


def _time(optional: bool) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value is None and optional:
            return None
        if isinstance(value, str):  # SQLite stores times as text
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise _Bad from None
        if not isinstance(value, datetime):
            raise _Bad
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if not EARLIEST <= value < LATEST:
            raise _Bad
        return value

    return check


# Each column the reconciler reads besides the id, the status (the candidate query selects
# open statuses only) and the context (``RunContext.parse_stored_text``): its check, and
# the placeholder the row gets when the check fails (such a row is decided from its
# unusable fields alone: no proof rule reads the placeholders).
_TIMES = ("created_at", "started_at", "last_heartbeat_at", "last_progress_at", "stale_at")
CHECKS: dict[str, tuple[Callable[[object], object], object]] = {
    "workspace_id": (_id(optional=False), None),
    "managed_environment_id": (_id(optional=True), None),
    # Any well-formed type name is readable: an unknown one is decided by staleness.
    "type": (_text(_TYPE, optional=False), ""),
    "input_hash": (_text(_HASH, optional=False), ""),
    "identity_key": (_text(_HASH, optional=False), ""),
    "once_key": (_text(_HASH, optional=True), None),
    "outcome": (_text(None, optional=True), None),
    "reason_code": (_text(None, optional=True), None),
    "dagster_run_id": (_text(_RUN_ID, optional=True), None),
    "created_at": (_time(optional=False), EARLIEST),
    "started_at": (_time(optional=True), None),
    "last_heartbeat_at": (_time(optional=True), None),
    "last_progress_at": (_time(optional=False), EARLIEST),
    "stale_at": (_time(optional=True), None),
    "completed_at": (_time(optional=True), None),
}


def raw_columns(dialect: str) -> list[ColumnElement[Any]]:
    """What the candidate query selects for ``CHECKS``, in its order: each column as stored,
    without conversion. On PostgreSQL a time is typed (no garbage text fits), but the driver
    raises on one it cannot represent: an out-of-range time is read as NULL beside a flag
    that says it was there."""
    table = OperationRun.__table__.c
    found: list[ColumnElement[Any]] = []
    for name in CHECKS:
        column = table[name]
        if dialect == "postgresql" and name in _TIMES:
            found.append(case((column.between(EARLIEST, LATEST), column)))
            found.append(column.is_not(None))
        elif dialect == "postgresql":
            found.append(column)  # typed by PostgreSQL: an int is an int, text is text
        else:
            found.append(type_coerce(column, NullType()))
    return found


def read_fields(raw: Sequence[object], dialect: str) -> tuple[dict[str, Any], list[Unreadable]]:
    """Check the row's raw values (``raw_columns``' order): the usable ones (else the
    placeholders) by column name, and what was unusable."""
    problems: list[Unreadable] = []
    values: dict[str, Any] = {}
    raw_values = iter(raw)
    for name, (check, placeholder) in CHECKS.items():
        value = next(raw_values)
        if dialect == "postgresql" and name in _TIMES:
            present = next(raw_values)
            if value is None and present:
                problems.append(Unreadable(name, "out_of_range", 0))
                values[name] = placeholder
                continue
        try:
            values[name] = check(value)
        except _Bad:
            problems.append(Unreadable(name, *_kind(value)))
            values[name] = placeholder
    return values, problems
