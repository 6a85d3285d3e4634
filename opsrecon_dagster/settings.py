"""Runtime settings, read from the environment when asked for (never at import time)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
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


# Application contexts shared within a process, so sensor ticks and job steps reuse their
# pooled connections instead of building an engine each time. Bounded: the least recently
# used context is disposed (only its idle connections close; checked-out ones finish).
_SHARED: OrderedDict[Settings, AppContext] = OrderedDict()
_SHARED_MAX = 4
_SHARED_LOCK = threading.Lock()


def shared_app(settings: Settings) -> AppContext:
    """The process's ``AppContext`` for these settings (created once, then reused)."""
    with _SHARED_LOCK:
        app = _SHARED.get(settings)
        if app is None:
            app = _SHARED[settings] = AppContext(settings)
            while len(_SHARED) > _SHARED_MAX:
                _settings, evicted = _SHARED.popitem(last=False)
                evicted.dispose()
        _SHARED.move_to_end(settings)
        return app


def dispose_shared() -> None:
    """Dispose every shared context (e.g. before a database file is removed and recreated
    under the same path, which pooled connections would otherwise keep writing to)."""
    with _SHARED_LOCK:
        while _SHARED:
            _settings, app = _SHARED.popitem()
            app.dispose()
