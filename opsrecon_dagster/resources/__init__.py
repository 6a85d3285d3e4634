"""Dagster resources: the application database and the tenant provider, as interfaces."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from opsrecon_dagster.alerts.ledger import ATTENTION, UnknownOutcomeError, parse_outcomes
from opsrecon_dagster.alerts.webhook import Webhook
from opsrecon_dagster.app import AppContext, shared_app
from opsrecon_dagster.db.engine import default_database_url
from opsrecon_dagster.enums import RunOutcome
from opsrecon_dagster.operations.reasons import parse_language
from opsrecon_dagster.providers.base import TenantProvider
from opsrecon_dagster.providers.fixture import FixtureTenantProvider
from opsrecon_dagster.providers.http import HttpTenantProvider
from opsrecon_dagster.settings import Settings

FIXTURE_PATH_VAR = "OPSRECON_FIXTURE_PATH"


class AppDatabaseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The application database (``operation_runs`` and the artifact tables).

    Deployed, its settings come from ``OPSRECON_*`` variables (``resources/configured.py``).
    """

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default data/opsrecon.sqlite3 (embedded SQLite).",
    )
    stale_thresholds_json: str | None = Field(
        default=None, description="Stale threshold overrides (see README); optional."
    )
    language: str | None = Field(default=None, description="Message language: en (default), de.")

    @classmethod
    def of(cls, settings: Settings) -> AppDatabaseResource:
        """The resource for a whole ``Settings`` (a process that already holds its settings:
        the CLI, the demo, an in-process launch), so language and thresholds go with it."""
        return cls(
            database_url=settings.database_url,
            stale_thresholds_json=settings.stale_thresholds_json,
            language=settings.language,
        )

    def settings(self) -> Settings:
        """The settings this resource stands for; a setting left unset is its default (the
        environment was read once, when the definitions were built)."""
        return Settings(
            database_url=self.database_url or default_database_url(),
            stale_thresholds_json=self.stale_thresholds_json or None,
            language=parse_language(self.language),
        )

    def app(self) -> AppContext:
        """A new application context of its own (the caller disposes it)."""
        return AppContext(self.settings())

    @contextmanager
    def opened(self) -> Iterator[AppContext]:
        """The process's shared application context for these settings, for a block: its
        pooled connections serve the next tick or step too."""
        yield shared_app(self.settings())


class ClockResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """What "now" is for reconciliation: the real clock by default, or a fixed instant.

    Tests and operators evaluate staleness at an explicit time with ``fixed_now`` (e.g. "as
    of two hours from now") instead of rewriting timestamps in the database.
    """

    fixed_now: str | None = Field(
        default=None, description="ISO-8601 instant with a time zone; unset: the real clock."
    )

    def now(self) -> datetime:
        """The configured instant, else the current time (UTC)."""
        if self.fixed_now is None:
            return datetime.now(UTC)
        value = datetime.fromisoformat(self.fixed_now)
        if value.tzinfo is None:
            raise dg.Failure("ClockResource.fixed_now needs a time zone, e.g. +00:00")
        return value.astimezone(UTC)

    @classmethod
    def at(cls, instant: datetime) -> ClockResource:
        """A clock fixed at ``instant``."""
        return cls(fixed_now=instant.astimezone(UTC).isoformat())


class ProviderResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The tenant provider: the fixture provider (default) or the Graph-style HTTP provider.

    Deployed, its settings come from ``OPSRECON_PROVIDER*`` variables, the token as a
    ``dg.EnvVar`` (``resources/configured.py``).
    """

    kind: str = Field(default="fixture", description="fixture (default) or http.")
    fixture_path: str | None = Field(
        default=None,
        description="Fixture tenants JSON; default the packaged one.",
    )
    base_url: str | None = Field(default=None, description="HTTP provider: the API's base URL.")
    token: str | None = Field(default=None, description="HTTP provider: bearer token (EnvVar).")
    timeout_seconds: int = Field(default=10, description="HTTP: connect and read timeout.")
    max_retries: int = Field(default=3, description="HTTP: retries of a throttled request.")
    max_retry_after_seconds: int = Field(
        default=30, description="HTTP: longest Retry-After honoured before a retry."
    )

    def get_provider(self) -> TenantProvider:
        """Build the configured provider; a configuration error fails with a message that
        names the setting, never its value."""
        if self.kind == "http":
            if not self.base_url or not self.token:
                raise dg.Failure("the HTTP provider needs OPSRECON_PROVIDER_URL and a token")
            try:
                return HttpTenantProvider(
                    base_url=self.base_url,
                    token=self.token,
                    timeout_seconds=self.timeout_seconds,
                    max_retries=self.max_retries,
                    max_retry_after_seconds=self.max_retry_after_seconds,
                )
            except ValueError as exc:  # its messages never echo the token
                raise dg.Failure(f"HTTP provider settings: {exc}") from None
        if self.kind != "fixture":
            raise dg.Failure(f"unknown provider kind {self.kind!r}: fixture or http")
        if self.fixture_path:
            return FixtureTenantProvider.from_file(self.fixture_path)
        return FixtureTenantProvider.default()


class AlertWebhookResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where decisions that need attention are posted: a webhook URL (Slack-compatible
    JSON), or none (alerts off, the default).

    Deployed, from ``OPSRECON_ALERT_WEBHOOK_URL`` (a ``dg.EnvVar``: a Slack webhook URL is
    a secret) and ``OPSRECON_ALERT_OUTCOMES`` (``resources/configured.py``).
    """

    url: str | None = Field(default=None, description="Webhook URL (EnvVar); unset: no alerts.")
    outcomes: str = Field(
        default=",".join(sorted(o.value for o in ATTENTION)),
        description="Comma-separated outcomes to post.",
    )
    timeout_seconds: int = Field(default=10, description="Connect and read timeout.")

    def alert_outcomes(self) -> frozenset[RunOutcome]:
        """The outcomes to post; a wrong value fails with a message naming it."""
        try:
            return parse_outcomes(self.outcomes)
        except UnknownOutcomeError as exc:
            raise dg.Failure(f"OPSRECON_ALERT_OUTCOMES: {exc}") from None

    def webhook(self) -> Webhook | None:
        """The configured webhook, or None when alerts are off."""
        if not self.url:
            return None
        try:
            return Webhook(self.url, timeout_seconds=self.timeout_seconds)
        except ValueError as exc:  # its messages never echo the URL
            raise dg.Failure(str(exc)) from None
