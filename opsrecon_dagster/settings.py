"""Configuration: the settings a process runs with, read from the environment when asked for
(never at import time). What is built from them lives in ``opsrecon_dagster.app``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from opsrecon_dagster.db.engine import default_database_url
from opsrecon_dagster.operations.reasons import Language, parse_language

DATABASE_URL_VAR = "OPSRECON_DATABASE_URL"
STALE_THRESHOLDS_VAR = "OPSRECON_STALE_THRESHOLDS"
LANGUAGE_VAR = "OPSRECON_LANGUAGE"


@dataclass(frozen=True)
class Settings:
    """What one process is configured with (hashable: shared contexts are keyed by it)."""

    database_url: str
    stale_thresholds_json: str | None = None
    language: Language = "en"  # of messages on every surface; reason codes never change

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings ``environ`` names (default: this process's environment, read now);
        an unset or empty variable means its default."""
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get(DATABASE_URL_VAR) or default_database_url(),
            stale_thresholds_json=env.get(STALE_THRESHOLDS_VAR) or None,
            language=parse_language(env.get(LANGUAGE_VAR)),
        )
