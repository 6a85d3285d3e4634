"""The Dagster entry point: ``opsrecon_dagster.definitions:defs``."""

from __future__ import annotations

import dagster as dg

from opsrecon_dagster.assets.artifacts import ARTIFACT_ASSETS
from opsrecon_dagster.jobs import JOBS
from opsrecon_dagster.resources import AppDatabaseResource, ProviderResource

defs = dg.Definitions(
    assets=ARTIFACT_ASSETS,
    jobs=JOBS,
    resources={
        "app_db": AppDatabaseResource(),
        "provider": ProviderResource(),
    },
)
