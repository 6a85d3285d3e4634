"""Database URL handling: one PostgreSQL driver, every spelling users paste."""

from __future__ import annotations

import pytest

from opsrecon_dagster.db.engine import DatabaseUrlError, describe_url, normalize_url


@pytest.mark.parametrize(
    "raw",
    [
        "postgres://u:pw@db.internal:5432/ops",
        "postgresql://u:pw@db.internal:5432/ops",
        "postgresql+psycopg2://u:pw@db.internal:5432/ops",
    ],
)
def test_postgres_spellings_map_to_psycopg2(raw: str) -> None:
    url = normalize_url(raw)
    assert url.drivername == "postgresql+psycopg2"
    assert (url.host, url.port, url.database, url.username) == ("db.internal", 5432, "ops", "u")


def test_sqlite_url_is_kept() -> None:
    assert normalize_url("sqlite:///data/x.sqlite3").database == "data/x.sqlite3"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a url", "not valid"),
        ("mysql://u@h/db", "unsupported database backend"),
        ("postgresql+asyncpg://u:pw@h/db", "not supported"),
    ],
)
def test_bad_urls_are_rejected_without_echoing_secrets(raw: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message) as err:
        normalize_url(raw)
    assert "pw" not in str(err.value)


def test_describe_hides_password() -> None:
    assert "s3cret" not in describe_url(normalize_url("postgresql://u:s3cret@h/db"))


def test_resources_share_one_pooled_engine_per_database(tmp_path) -> None:
    """Ticks and steps reuse the process's context (and its pool) for the same settings."""
    from opsrecon_dagster.app import dispose_shared
    from opsrecon_dagster.resources import AppDatabaseResource

    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    resource = AppDatabaseResource(database_url=url)
    with resource.opened() as first, resource.opened() as second:
        assert first is second
        assert first.engine is second.engine
    with AppDatabaseResource(database_url=url, language="de").opened() as german:
        assert german is not first and german.language == "de"
    dispose_shared()
    with resource.opened() as fresh:
        assert fresh is not first
