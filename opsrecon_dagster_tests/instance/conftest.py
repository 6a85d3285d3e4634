"""Fixtures of the Dagster-instance tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opsrecon_dagster_tests.conftest import throwaway_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_configs(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[[], dict[str, Any] | None]]:
    """A new, empty Dagster storage per call: the SQLite default, or PostgreSQL (a
    throwaway database each)."""
    if request.param == "sqlite":
        yield lambda: None
        return
    server = request.getfixturevalue("postgres_server_url")
    with contextlib.ExitStack() as stack:

        def fresh() -> dict[str, Any]:
            databases = throwaway_database(server, "dagster_events")
            url = next(databases)
            stack.callback(lambda: next(databases, None))
            return {"storage": {"postgres": {"postgres_url": url}}}

        yield fresh
