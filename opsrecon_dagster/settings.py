"""Configuration: the settings a process runs with, read from the environment when asked for
(never at import time). What is built from them lives in ``opsrecon_dagster.app``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opsrecon_dagster.db.engine import default_database_url
from opsrecon_dagster.operations.reasons import Language, parse_language

DATABASE_URL_VAR = "OPSRECON_DATABASE_URL"
UI_URL_VAR = "OPSRECON_DAGSTER_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"  # where `tasks.py dev` serves the UI by default
DEFAULT_DAGSTER_HOME = Path("data") / "dagster_home"
# `tasks.py dev` writes the address it serves the UI on here, in its DAGSTER_HOME.
UI_URL_FILE = "ui_url"
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


def dagster_ui_url(environ: Mapping[str, str] | None = None) -> str:
    """The Dagster UI's base address for run links: ``$OPSRECON_DAGSTER_UI_URL``, else the
    address ``tasks.py dev`` serves on (it writes it into its ``DAGSTER_HOME``), else
    ``tasks.py dev``'s default."""
    env = os.environ if environ is None else environ
    if env.get(UI_URL_VAR):
        return env[UI_URL_VAR].rstrip("/")
    written = Path(env.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME) / UI_URL_FILE
    try:
        served = written.read_text().strip()
    except OSError:
        served = ""
    return (served or DEFAULT_UI_URL).rstrip("/")
