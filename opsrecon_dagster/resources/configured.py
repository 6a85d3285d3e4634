"""The resources as deployed: configured from the environment when definitions load.

Each setting whose variable is set (and not empty) is wired as a ``dg.EnvVar``: Dagster
resolves it where the resource is used (the run worker, the code server), and shows only
the variable's name in run config and the UI, so the provider token is never stored or
logged. Unset settings keep the resource's documented default: the embedded SQLite
database and the packaged fixture tenants, which is what the demo runs on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from opsrecon_dagster.resources import (
    FIXTURE_PATH_VAR,
    AlertWebhookResource,
    AppDatabaseResource,
    ClockResource,
    ProviderResource,
)

# Resource field -> environment variable.
APP_DB_VARS = {
    "database_url": "OPSRECON_DATABASE_URL",
    "stale_thresholds_json": "OPSRECON_STALE_THRESHOLDS",
    "language": "OPSRECON_LANGUAGE",
}
PROVIDER_VARS = {
    "kind": "OPSRECON_PROVIDER",  # fixture (default) | http
    "fixture_path": FIXTURE_PATH_VAR,
    "base_url": "OPSRECON_PROVIDER_URL",
    "token": "OPSRECON_PROVIDER_TOKEN",
    "timeout_seconds": "OPSRECON_PROVIDER_TIMEOUT_SECONDS",
    "max_retries": "OPSRECON_PROVIDER_MAX_RETRIES",
    "max_retry_after_seconds": "OPSRECON_PROVIDER_MAX_RETRY_AFTER_SECONDS",
}
ALERT_VARS = {
    "url": "OPSRECON_ALERT_WEBHOOK_URL",
    "outcomes": "OPSRECON_ALERT_OUTCOMES",
    "timeout_seconds": "OPSRECON_ALERT_TIMEOUT_SECONDS",
}
_INT_FIELDS = {"timeout_seconds", "max_retries", "max_retry_after_seconds"}


def _wired(variables: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, Any]:
    return {
        field: dg.EnvVar.int(name) if field in _INT_FIELDS else dg.EnvVar(name)
        for field, name in variables.items()
        if environ.get(name)
    }


def configured_resources(environ: Mapping[str, str]) -> dict[str, Any]:
    """The project's resources, each setting from its variable in ``environ`` when set."""
    return {
        "app_db": AppDatabaseResource(**_wired(APP_DB_VARS, environ)),
        "provider": ProviderResource(**_wired(PROVIDER_VARS, environ)),
        "alerts": AlertWebhookResource(**_wired(ALERT_VARS, environ)),
        "clock": ClockResource(),
    }
