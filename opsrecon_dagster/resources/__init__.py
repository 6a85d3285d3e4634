"""Dagster resources: the application database and the tenant provider, as interfaces."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import dagster as dg
from pydantic import Field

from opsrecon_dagster.providers.base import TenantProvider
from opsrecon_dagster.settings import AppContext, Settings


class AppDatabaseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The application database (``operation_runs`` and the artifact tables)."""

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default $OPSRECON_DATABASE_URL, then data/opsrecon.sqlite3",
    )
    stale_thresholds_json: str | None = Field(
        default=None, description="Stale threshold overrides (see README); optional."
    )

    def app(self) -> AppContext:
        """An application context for this run (settings resolved at execution, not import)."""
        settings = Settings.from_env()
        return AppContext(
            Settings(
                database_url=self.database_url or settings.database_url,
                stale_thresholds_json=self.stale_thresholds_json or settings.stale_thresholds_json,
            )
        )

    @contextmanager
    def opened(self) -> Iterator[AppContext]:
        """``app()`` for the length of a block; the engine is disposed afterwards."""
        app = self.app()
        try:
            yield app
        finally:
            app.dispose()


class ProviderResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The tenant provider: the fixture provider (default) or the Graph-style HTTP provider."""

    kind: Literal["fixture", "http"] = "fixture"
    fixture_path: str | None = Field(
        default=None, description="Fixture tenants JSON; the packaged default when unset."
    )
    base_url: str | None = None
    token: str | None = Field(default=None, description="Bearer token (use an EnvVar).")

    def get_provider(self) -> TenantProvider:
        """Build the configured provider."""
        if self.kind == "http":
            from opsrecon_dagster.providers.http import HttpTenantProvider

            if not self.base_url or not self.token:
                raise dg.Failure("the HTTP provider needs base_url and token")
            return HttpTenantProvider(base_url=self.base_url, token=self.token)
        from opsrecon_dagster.providers.fixture import FixtureTenantProvider

        if self.fixture_path:
            return FixtureTenantProvider.from_file(self.fixture_path)
        return FixtureTenantProvider.default()
