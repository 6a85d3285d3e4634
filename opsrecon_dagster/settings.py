"""Runtime settings, read from the environment when asked for (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.db.engine import (
    default_database_url,
    make_engine,
    make_session_factory,
    normalize_url,
)
from opsrecon_dagster.operations.catalog import OperationCatalog
from opsrecon_dagster.operations.lifecycle import OperationRunService
from opsrecon_dagster.operations.reasons import Language, parse_language

DATABASE_URL_VAR = "OPSRECON_DATABASE_URL"
STALE_THRESHOLDS_VAR = "OPSRECON_STALE_THRESHOLDS"
LANGUAGE_VAR = "OPSRECON_LANGUAGE"


@dataclass(frozen=True)
class Settings:
    database_url: str
    stale_thresholds_json: str | None = None
    language: Language = "en"  # of messages on every surface; reason codes never change

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get(DATABASE_URL_VAR) or default_database_url(),
            stale_thresholds_json=env.get(STALE_THRESHOLDS_VAR),
            language=parse_language(env.get(LANGUAGE_VAR)),
        )


class AppContext:
    """Engine, sessions, catalog and lifecycle service for one database, built lazily."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = normalize_url(settings.database_url)

    @property
    def language(self) -> Language:
        return self.settings.language

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def catalog(self) -> OperationCatalog:
        return OperationCatalog.from_json(self.settings.stale_thresholds_json)

    @cached_property
    def runs(self) -> OperationRunService:
        return OperationRunService(self.sessions, self.catalog)

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
