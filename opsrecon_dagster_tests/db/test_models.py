"""The application database's column types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite.base import DATETIME

from opsrecon_dagster.db.models import UtcDateTime

SQLITE = sqlite.dialect()


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
)
def test_sqlite_binds_the_text_sqlites_datetime_type_stores(value: datetime) -> None:
    """``UtcDateTime``'s one-step SQLite binding stores exactly what SQLAlchemy's SQLite
    ``DATETIME`` stores for the value in UTC (rows written before and after compare and
    sort alike)."""
    ours = UtcDateTime().bind_processor(SQLITE)
    reference = DATETIME().bind_processor(SQLITE)  # type: ignore[no-untyped-call]
    assert ours is not None and reference is not None
    assert ours(value) == reference(value.astimezone(UTC).replace(tzinfo=None))


def test_sqlite_binding_refuses_naive_datetimes_and_passes_none() -> None:
    ours = UtcDateTime().bind_processor(SQLITE)
    assert ours is not None
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive"):
        ours(datetime(2026, 1, 1))


@given(
    st.lists(
        st.sampled_from(
            [
                datetime(2026, 12, 5, 19, 0, tzinfo=UTC),
                datetime(2026, 12, 5, 21, 0, tzinfo=timezone(timedelta(hours=2))),
                datetime(2026, 12, 5, 19, 0, 0, 1, tzinfo=UTC),
                None,
            ]
        ),
        max_size=12,
    )
)
def test_sqlite_binding_of_repeated_values_is_each_values_own(
    values: list[datetime | None],
) -> None:
    """The binding remembers its last value (a batch binds one instant on every row): a
    repeated, alternating or equal-but-other value still binds its own text."""
    ours = UtcDateTime().bind_processor(SQLITE)
    reference = DATETIME().bind_processor(SQLITE)  # type: ignore[no-untyped-call]
    assert ours is not None and reference is not None
    for value in values:
        expected = None if value is None else reference(value.astimezone(UTC).replace(tzinfo=None))
        assert ours(value) == expected
