"""The application container: engine, sessions, catalog and lifecycle service built from
``Settings`` (``AppContext``), and the contexts a process shares."""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from opsrecon_dagster.db.engine import make_engine, make_session_factory, normalize_url
from opsrecon_dagster.operations.catalog import OperationCatalog
from opsrecon_dagster.operations.lifecycle import OperationRunService
from opsrecon_dagster.operations.reasons import Language
from opsrecon_dagster.settings import Settings


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
